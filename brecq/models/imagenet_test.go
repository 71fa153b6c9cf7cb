package models_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brecq-go/brecq/brecq/models"
)

// TestImageNetParamCounts: the trainable parameter counts (weights, biases,
// BatchNorm γ and β) at 1000 classes equal the published ones: torchvision's
// model documentation for resnet18, resnet50, mobilenet_v2, mnasnet1_0 and
// regnet_x_3_2gf, 6 196 040 for RegNetX-600MF (6.2 M in Radosavovic et al.).
func TestImageNetParamCounts(t *testing.T) {
	want := map[string]int{"resnet18": 11689512, "resnet50": 25557032, "mobilenetv2": 3504872,
		"mnasnet": 4383312, "regnetx3200m": 15296552, "regnetx600m": 6196040}
	for arch, n := range want {
		net, err := models.New(arch, 3, 224, 224, 1000)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for name, s := range net.ParamShapes() {
			if !strings.HasSuffix(name, "running_mean") && !strings.HasSuffix(name, "running_var") {
				got += numel(s)
			}
		}
		if got != n {
			t.Errorf("%s: %d trainable parameters, want %d", arch, got, n)
		}
	}
}

// TestActPointsFollowAuthorsRules counts the activation points each rule of
// the authors' code gives, written out per network: the stem output; per
// BasicBlock conv1's ReLU output and the block output (2); per Bottleneck /
// RegNet block conv1 and conv2 outputs and the block output (3); per
// MobileNetV2 inverted residual the expansion and depthwise outputs (one of
// them when t = 1) and the signed block output, then the last 1×1 conv; for
// MNASNet every conv output (the separable block's 2, 3 per inverted
// residual, the last conv) and no block outputs.
func TestActPointsFollowAuthorsRules(t *testing.T) {
	want := map[string]int{
		"resnet18":     1 + 8*2,
		"resnet50":     1 + 16*3,
		"regnetx600m":  1 + (1+3+5+7)*3,
		"regnetx3200m": 1 + (2+6+15+2)*3,
		"mobilenetv2":  1 + 2 + 16*3 + 1,
		"mnasnet":      1 + 2 + 16*3 + 1,
		"resnet20":     1 + 9*2,
	}
	for arch, n := range want {
		net, err := models.New(arch, 3, 64, 64, 10)
		if err != nil {
			t.Fatal(err)
		}
		pts := net.ActPoints()
		if len(pts) != n {
			t.Errorf("%s: %d activation points, want %d: %v", arch, len(pts), n, pts)
		}
		if pts[0] != net.Blocks[0].Name {
			t.Errorf("%s: first point %q, want the stem %q", arch, pts[0], net.Blocks[0].Name)
		}
		if last := net.Blocks[net.LastBodyBlock()].Name; pts[len(pts)-1] != last {
			t.Errorf("%s: last point %q, want the classifier input %q", arch, pts[len(pts)-1], last)
		}
	}
	mb, _ := models.New("mobilenetv2", 3, 64, 64, 10)
	for _, p := range []string{"features.1.conv.0.0", "features.1", "features.2.conv.0.0", "features.2.conv.1.0", "features.2", "features.18"} {
		if !slicesContains(mb.ActPoints(), p) {
			t.Errorf("mobilenetv2: no activation point %q", p)
		}
	}
	for _, p := range []string{"features.2.conv.2", "features.18.0"} {
		if slicesContains(mb.ActPoints(), p) {
			t.Errorf("mobilenetv2: unexpected activation point %q", p)
		}
	}
	mn, _ := models.New("mnasnet", 3, 64, 64, 10)
	for _, p := range []string{"layers.6", "layers.8.1.layers.6"} {
		if !slicesContains(mn.ActPoints(), p) {
			t.Errorf("mnasnet: the projection %q is not quantized", p)
		}
	}
	if slicesContains(mn.ActPoints(), "layers.8.1") {
		t.Errorf("mnasnet: the residual addition layers.8.1 is quantized")
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestAuthorsNames checks the renamings against names read from the
// authors' models/mobilenetv2.py and models/regnet.py.
func TestAuthorsNames(t *testing.T) {
	for in, want := range map[string]string{
		"features.0.0.weight":              "features.0.0.weight",
		"features.1.conv.0.0.weight":       "features.1.conv.0.weight",
		"features.1.conv.0.1.running_mean": "features.1.conv.1.running_mean",
		"features.1.conv.1.weight":         "features.1.conv.3.weight",
		"features.1.conv.2.bias":           "features.1.conv.4.bias",
		"features.5.conv.1.0.weight":       "features.5.conv.3.weight",
		"features.5.conv.1.1.weight":       "features.5.conv.4.weight",
		"features.17.conv.2.weight":        "features.17.conv.6.weight",
		"features.17.conv.3.running_var":   "features.17.conv.7.running_var",
		"features.18.1.weight":             "features.18.1.weight",
		"classifier.1.bias":                "classifier.1.bias",
	} {
		if got := models.AuthorsMobileNetV2Name(in); got != want {
			t.Errorf("AuthorsMobileNetV2Name(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"stem.0.weight": "stem.conv.weight",
		"stem.1.bias":   "stem.bn.bias",
		"trunk_output.block1.block1-0.proj.0.weight":       "s1.b1.proj.weight",
		"trunk_output.block1.block1-0.proj.1.running_mean": "s1.b1.bn.running_mean",
		"trunk_output.block3.block3-4.f.b.0.weight":        "s3.b5.f.b.weight",
		"trunk_output.block3.block3-4.f.c.1.weight":        "s3.b5.f.c_bn.weight",
		"fc.weight": "head.fc.weight",
	} {
		if got := models.AuthorsRegNetName(in); got != want {
			t.Errorf("AuthorsRegNetName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLoadArchDetectsAndReports writes state_dicts with random values under
// each layout and checks detection, the class count, and the error naming
// the nearest layout's missing and unexpected tensors.
func TestLoadArchDetectsAndReports(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, shapes map[string][]int) string {
		ts, _ := torchStateDict(t, shapes, 7)
		return writeFile(t, dir, name, torchFile(ts, `{"format":"pt"}`))
	}
	net, err := models.New("mobilenetv2", 3, 32, 32, 7)
	if err != nil {
		t.Fatal(err)
	}
	authors := map[string][]int{}
	for n, s := range net.ParamShapes() {
		authors[models.AuthorsMobileNetV2Name(n)] = s
	}
	path := write("mb.safetensors", authors)
	ck, err := models.LoadArch(path, "", 3, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Net.Name != "mobilenetv2" || ck.Layout != "authors" || ck.Net.Classes != 7 {
		t.Errorf("detected %s / %s / %d classes, want mobilenetv2 / authors / 7", ck.Net.Name, ck.Layout, ck.Net.Classes)
	}
	if _, ok := ck.Params["features.2.conv.1.0.weight"]; !ok || len(ck.Params) != len(net.ParamShapes()) {
		t.Errorf("parameters not under torchvision's names: %d tensors", len(ck.Params))
	}
	// mobilenetv2-s1 has mobilenetv2's tensors: detection picks it only when
	// the metadata names it, and its stem then runs at stride 1.
	plain := writeFile(t, dir, "tv.safetensors", torchFile(func() []rawTensor { ts, _ := torchStateDict(t, net.ParamShapes(), 7); return ts }(), `{"format":"pt"}`))
	s1 := writeFile(t, dir, "s1.safetensors", torchFile(func() []rawTensor { ts, _ := torchStateDict(t, net.ParamShapes(), 7); return ts }(), `{"format":"pt","model":"mobilenetv2-s1"}`))
	for _, c := range []struct {
		path, arch, want string
		stride           int
	}{{plain, "", "mobilenetv2", 2}, {s1, "", "mobilenetv2-s1", 1}, {plain, "mobilenetv2-s1", "mobilenetv2-s1", 1}, {s1, "mobilenetv2", "mobilenetv2", 2}} {
		ck, err := models.LoadArch(c.path, c.arch, 3, 32, 32)
		if err != nil {
			t.Fatal(err)
		}
		if got := ck.Net.Blocks[0].Layers[0].Stride; ck.Net.Name != c.want || got != c.stride || ck.Layout != "torchvision" {
			t.Errorf("%s as %q: %s (%s layout), stem stride %d; want %s, stride %d", filepath.Base(c.path), c.arch, ck.Net.Name, ck.Layout, got, c.want, c.stride)
		}
	}
	// One tensor renamed, one dropped: the error names both, the arch and the layout.
	delete(authors, "features.3.conv.4.weight")
	authors["features.3.conv.9.weight"] = []int{144}
	path = write("bad.safetensors", authors)
	_, err = models.LoadArch(path, "", 3, 32, 32)
	if err == nil {
		t.Fatal("no error for a state_dict with a missing and an unexpected tensor")
	}
	for _, s := range []string{filepath.Base(path), "nearest: mobilenetv2 in the authors layout", "1 missing tensor(s) (features.3.conv.4.weight)", "1 unexpected (features.3.conv.9.weight)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	// Names right, one shape wrong: reported by name.
	shapes := net.ParamShapes()
	shapes["features.4.conv.1.0.weight"] = []int{144, 1, 5, 5}
	path = write("shape.safetensors", shapes)
	if _, err := models.LoadArch(path, "mobilenetv2", 3, 32, 32); err == nil || !strings.Contains(err.Error(), "features.4.conv.1.0.weight") {
		t.Errorf("mis-shaped tensor: error %v", err)
	}
	if _, err := models.LoadArch(path, "vgg16", 3, 32, 32); err == nil || !strings.Contains(err.Error(), "resnet18") {
		t.Errorf("unknown architecture: error %v does not list the known ones", err)
	}
	// MNASNet's depth multiplier comes from the stem width (the authors' model is 2.0).
	m2, err := models.MNASNet(2, 3, 32, 32, 5)
	if err != nil {
		t.Fatal(err)
	}
	ck, err = models.LoadArch(write("mnas2.safetensors", m2.ParamShapes()), "mnasnet", 3, 32, 32)
	if err != nil || ck.Net.Name != "mnasnet2" || ck.Net.Blocks[0].Layers[0].Out != 64 {
		t.Errorf("MNASNet 2.0: %v", err)
	}
}

// TestDescriptionsValidateAtAnySize builds every architecture at several
// input sizes and checks Validate's reports on broken descriptions.
func TestDescriptionsValidateAtAnySize(t *testing.T) {
	for _, arch := range models.Archs() {
		for _, hw := range [][2]int{{224, 224}, {64, 64}, {33, 47}} {
			if _, err := models.New(arch, 3, hw[0], hw[1], 10); err != nil {
				t.Errorf("%s at %v: %v", arch, hw, err)
			}
		}
	}
	net, _ := models.New("resnet18", 3, 64, 64, 10)
	net.Blocks[3].Layers[0].In = 63
	net.Blocks[5].Name = net.Blocks[4].Name
	net.NumStages = 5
	err := net.Validate()
	for _, s := range []string{"layer2.0.conv1: in 63", fmt.Sprintf("block name %q used twice", net.Blocks[4].Name), "stage 5 has no blocks"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Validate: %v does not report %q", err, s)
		}
	}
}
