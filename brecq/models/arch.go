package models

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/safetensors"
)

// Archs lists the architecture names New accepts.
func Archs() []string {
	return []string{"resnet20", "resnet18", "resnet50", "mobilenetv2", "mobilenetv2-s1", "regnetx600m", "regnetx3200m", "mnasnet"}
}

// strideVariants maps an architecture whose state_dict is tensor for tensor
// that of another (only strides differ) to that other one.
var strideVariants = map[string]string{"mobilenetv2-s1": "mobilenetv2"}

// New describes architecture arch (one of Archs()) for inC×h×w inputs and
// the given number of classes, with torchvision's parameter names. mnasnet is
// MNASNet 1.0 (LoadArch also reads other depth multipliers); mobilenetv2-s1
// is MobileNetV2 with a stride-1 stem (MobileNetV2S1).
func New(arch string, inC, h, w, classes int) (*Net, error) {
	if inC < 1 || h < 1 || w < 1 || classes < 1 {
		return nil, fmt.Errorf("models: %s for %d×%d×%d inputs and %d classes: every size must be ≥ 1", arch, inC, h, w, classes)
	}
	switch arch {
	case "resnet20":
		return CIFARResNet(20, 1, inC, h, w, classes)
	case "resnet18":
		return ImageNetResNet(18, inC, h, w, classes)
	case "resnet50":
		return ImageNetResNet(50, inC, h, w, classes)
	case "mobilenetv2":
		return MobileNetV2(inC, h, w, classes)
	case "mobilenetv2-s1":
		return MobileNetV2S1(inC, h, w, classes)
	case "regnetx600m":
		return RegNetX(arch, RegNetX600MF, inC, h, w, classes)
	case "regnetx3200m":
		return RegNetX(arch, RegNetX3200MF, inC, h, w, classes)
	case "mnasnet":
		return MNASNet(1, inC, h, w, classes)
	}
	return nil, fmt.Errorf("models: unknown architecture %q: want one of %s", arch, strings.Join(Archs(), ", "))
}

// Layout maps the canonical (torchvision) parameter names of a description
// to the names one kind of checkpoint uses.
type Layout struct {
	Name string // "torchvision" or "authors"
	// Rename returns the checkpoint's name of the canonical tensor name.
	Rename func(canonical string) string
}

func identity(s string) string { return s }

// Layouts lists the parameter layouts of arch, torchvision's first. The
// authors' layout is that of the checkpoints released with the BRECQ code
// (their models/ folder): their ResNet and MNASNet use torchvision's names;
// their MobileNetV2 and RegNet do not (see AuthorsMobileNetV2Name and
// AuthorsRegNetName).
func Layouts(arch string) []Layout {
	tv := Layout{Name: "torchvision", Rename: identity}
	switch arch {
	case "mobilenetv2", "mobilenetv2-s1":
		return []Layout{tv, {Name: "authors", Rename: AuthorsMobileNetV2Name}}
	case "regnetx600m", "regnetx3200m":
		return []Layout{tv, {Name: "authors", Rename: AuthorsRegNetName}}
	}
	return []Layout{tv}
}

// AuthorsMobileNetV2Name maps a torchvision mobilenet_v2 name to the
// authors' MobileNetV2, whose InvertedResidual keeps conv, BN and ReLU6 flat
// in one Sequential "conv": features.1 (expansion 1): conv.0.0 → conv.0,
// conv.0.1 → conv.1, conv.1 → conv.3, conv.2 → conv.4; features.2..17:
// conv.0.0 → conv.0, conv.0.1 → conv.1, conv.1.0 → conv.3, conv.1.1 → conv.4,
// conv.2 → conv.6, conv.3 → conv.7. features.0.*, features.18.* and
// classifier.1.* are the same in both.
func AuthorsMobileNetV2Name(name string) string {
	p := strings.Split(name, ".")
	if len(p) < 5 || p[0] != "features" || p[2] != "conv" {
		return name
	}
	rest := p[3:]
	var table [][2]string
	if p[1] == "1" {
		table = [][2]string{{"0.0", "0"}, {"0.1", "1"}, {"1", "3"}, {"2", "4"}}
	} else {
		table = [][2]string{{"0.0", "0"}, {"0.1", "1"}, {"1.0", "3"}, {"1.1", "4"}, {"2", "6"}, {"3", "7"}}
	}
	for _, e := range table {
		k := strings.Split(e[0], ".")
		if len(rest) > len(k) && strings.Join(rest[:len(k)], ".") == e[0] {
			return strings.Join(append(append(append([]string{}, p[:3]...), e[1]), rest[len(k):]...), ".")
		}
	}
	return name
}

// AuthorsRegNetName maps a torchvision RegNet name to the authors' RegNet
// (pycls naming): stem.0 / stem.1 → stem.conv / stem.bn;
// trunk_output.blockS.blockS-J.X → sS.b(J+1).X with proj.0 → proj,
// proj.1 → bn, f.a.0 → f.a, f.a.1 → f.a_bn (likewise b, c); fc → head.fc.
func AuthorsRegNetName(name string) string {
	p := strings.Split(name, ".")
	switch {
	case p[0] == "stem" && len(p) > 2:
		return strings.Join(append([]string{"stem", map[string]string{"0": "conv", "1": "bn"}[p[1]]}, p[2:]...), ".")
	case p[0] == "fc":
		return "head." + name
	case p[0] != "trunk_output" || len(p) < 6:
		return name
	}
	s := strings.TrimPrefix(p[1], "block")
	_, js, _ := strings.Cut(p[2], "-")
	j, _ := strconv.Atoi(js)
	rest := p[3:]
	if rest[0] == "proj" {
		rest = append([]string{map[string]string{"0": "proj", "1": "bn"}[rest[1]]}, rest[2:]...)
	} else if rest[0] == "f" {
		suffix := ""
		if rest[2] == "1" {
			suffix = "_bn"
		}
		rest = append([]string{"f", rest[1] + suffix}, rest[3:]...)
	}
	return strings.Join(append([]string{"s" + s, fmt.Sprintf("b%d", j+1)}, rest...), ".")
}

// Checkpoint is a network read from a state_dict: its description, its
// parameters under the canonical names, the layout the file used and the
// file's metadata.
type Checkpoint struct {
	Net    *Net
	Params Params
	Layout string
	Meta   map[string]string
}

// LoadArch reads the safetensors state_dict at path as architecture arch
// (one of Archs(); "" tries them all) for inC×h×w inputs. A variant that
// differs from another architecture only in its strides (mobilenetv2-s1) has
// the same tensors, so "" tries it instead of that architecture only when the
// file's metadata says model=<variant>, and the base architecture otherwise.
// The layout is
// detected from the tensor names (Layouts), the class count from the
// classifier's weight. Parameters are returned under torchvision's names.
// When no layout of any tried architecture matches, the error names the file
// and lists the missing and unexpected tensors of the nearest one; when the
// names match but shapes or dtypes do not, every such tensor is listed.
func LoadArch(path, arch string, inC, h, w int) (*Checkpoint, error) {
	ts, meta, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var archs []string
	for _, a := range Archs() {
		if base, ok := strideVariants[a]; !ok {
			archs = append(archs, a)
		} else if meta["model"] == a {
			archs[slices.Index(archs, base)] = a
		}
	}
	if arch != "" {
		if _, err := New(arch, 1, 1, 1, 1); err != nil {
			return nil, err
		}
		archs = []string{arch}
	}
	type cand struct {
		net                 *Net
		layout              Layout
		missing, unexpected []string
	}
	var best *cand
	for _, a := range archs {
		for _, lay := range Layouts(a) {
			net, err := candidate(a, lay, ts, inC, h, w)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			c := &cand{net: net, layout: lay}
			want := map[string]bool{}
			for _, n := range net.ParamNames() {
				fn := lay.Rename(n)
				want[fn] = true
				if _, ok := ts[fn]; !ok {
					c.missing = append(c.missing, fn)
				}
			}
			for n := range ts {
				if !want[n] && !IgnoredOnLoad(n) {
					c.unexpected = append(c.unexpected, n)
				}
			}
			if best == nil || len(c.missing)+len(c.unexpected) < len(best.missing)+len(best.unexpected) {
				best = c
			}
		}
	}
	if len(best.missing)+len(best.unexpected) > 0 {
		sort.Strings(best.missing)
		sort.Strings(best.unexpected)
		return nil, fmt.Errorf("%s: not a state_dict of %s; nearest: %s in the %s layout, with %d missing tensor(s)%s and %d unexpected%s",
			path, strings.Join(archs, " / "), best.net.Name, best.layout.Name,
			len(best.missing), listNames(best.missing), len(best.unexpected), listNames(best.unexpected))
	}
	shapes := map[string][]int{}
	for n, s := range best.net.ParamShapes() {
		shapes[best.layout.Rename(n)] = s
	}
	if err := safetensors.CheckF32(ts, shapes, IgnoredOnLoad); err != nil {
		return nil, fmt.Errorf("%s: not a %s state_dict (%s layout): %w", path, best.net.Name, best.layout.Name, err)
	}
	p := Params{}
	for _, n := range best.net.ParamNames() {
		t := ts[best.layout.Rename(n)]
		p[n] = tensors.FromFlatDataAndDimensions(append([]float32(nil), t.F32...), t.Shape...)
	}
	return &Checkpoint{Net: best.net, Params: p, Layout: best.layout.Name, Meta: meta}, nil
}

// candidate builds arch with the class count of the classifier weight found
// under layout lay (1 when absent, so the names can still be compared) and,
// for mnasnet, the depth multiplier whose stem width matches the file.
func candidate(arch string, lay Layout, ts map[string]*safetensors.Tensor, inC, h, w int) (*Net, error) {
	probe, err := New(arch, inC, h, w, 1)
	if err != nil {
		return nil, err
	}
	classes := 1
	fc := probe.Blocks[len(probe.Blocks)-1].Layers[0]
	if t, ok := ts[lay.Rename(fc.Name+".weight")]; ok && len(t.Shape) == 2 && t.Shape[0] >= 1 {
		classes = t.Shape[0]
	}
	if arch == "mnasnet" {
		if t, ok := ts[lay.Rename("layers.0.weight")]; ok && len(t.Shape) == 4 {
			for _, s := range []float64{1, 0.5, 0.75, 1.3, 2} {
				if mnasRound(32*s) == t.Shape[0] {
					return MNASNet(s, inC, h, w, classes)
				}
			}
		}
	}
	return New(arch, inC, h, w, classes)
}

// listNames formats up to 20 names for an error message.
func listNames(names []string) string {
	if len(names) == 0 {
		return ""
	}
	const maxShown = 20
	s := names
	more := ""
	if len(s) > maxShown {
		s, more = s[:maxShown], fmt.Sprintf(", … (%d more)", len(names)-maxShown)
	}
	return " (" + strings.Join(s, ", ") + more + ")"
}
