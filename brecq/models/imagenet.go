package models

import "fmt"

// The ImageNet networks of the BRECQ paper, described with torchvision 0.14's
// state_dict names. Activation points follow the authors' per-block rules
// (their quant/quant_block.py and quant_model.py):
//
//   - every conv followed by an activation inside a block quantizes its output
//     after the activation (Layer.Point);
//   - the last conv of a residual branch and a shortcut projection are not
//     quantized; the block output is, after the addition and the activation
//     (Block.OutPoint) — for an inverted residual that output is signed;
//   - a layer outside those blocks (the stem, MobileNetV2's last 1×1 conv,
//     every layer of MNASNet, whose inverted residual the authors' code does
//     not treat as a block) quantizes its own output after its activation;
//     MNASNet's residual additions are therefore not quantized;
//   - the classifier output is not quantized.

// resNetStem is conv1 (7×7, stride 2) + bn1 + ReLU, its output point, then the 3×3 stride-2 max-pool.
func resNetStem(inC int) *Block {
	return &Block{Name: "conv1", Kind: Stem, Act: NoAct, OutPoint: true, MaxPool: true, Layers: []*Layer{{
		Name: "conv1", Kind: Conv, In: inC, Out: 64, Kernel: 7, Stride: 2, Groups: 1, BN: "bn1", Act: ReLU,
	}}}
}

func conv(name, bn string, in, out, k, stride, groups int, act Activation, point bool) *Layer {
	return &Layer{Name: name, Kind: Conv, In: in, Out: out, Kernel: k, Stride: stride, Groups: groups, BN: bn, Act: act, Point: point}
}

func head(block, layer string, in, classes int) *Block {
	return &Block{Name: block, Kind: Head, Stage: -1, Layers: []*Layer{{
		Name: layer, Kind: Linear, In: in, Out: classes, Bias: true, Groups: 1,
	}}}
}

// ImageNetResNet describes torchvision's resnet18 / resnet34 (BasicBlock) and
// resnet50 / resnet101 / resnet152 (Bottleneck, expansion 4) for inC×h×w
// inputs: conv1 7×7/2 + bn1 + ReLU + max-pool 3×3/2; stages layer1..layer4
// with 64, 128, 256, 512 planes, stride 2 at the first block of layers 2–4
// (on conv1 of a BasicBlock, on the 3×3 conv2 of a Bottleneck), a 1×1 conv +
// BN shortcut (downsample.0 / downsample.1) where the stride or width
// changes; global average pool; fc. Blocks and stages are the reconstruction
// units (block = layerS.J, stage = layerS).
func ImageNetResNet(depth, inC, h, w, classes int) (*Net, error) {
	var blocks []int
	bottleneck := false
	switch depth {
	case 18:
		blocks = []int{2, 2, 2, 2}
	case 34:
		blocks = []int{3, 4, 6, 3}
	case 50:
		blocks, bottleneck = []int{3, 4, 6, 3}, true
	case 101:
		blocks, bottleneck = []int{3, 4, 23, 3}, true
	case 152:
		blocks, bottleneck = []int{3, 8, 36, 3}, true
	default:
		return nil, fmt.Errorf("models: ImageNet ResNet depth %d: want 18, 34, 50, 101 or 152", depth)
	}
	net := &Net{Name: fmt.Sprintf("resnet%d", depth), InC: inC, InH: h, InW: w, Classes: classes, NumStages: 4}
	net.Blocks = append(net.Blocks, resNetStem(inC))
	in := 64
	for s := 1; s <= 4; s++ {
		planes := 64 << (s - 1)
		out := planes
		if bottleneck {
			out = 4 * planes
		}
		for j := 0; j < blocks[s-1]; j++ {
			stride := 1
			if s > 1 && j == 0 {
				stride = 2
			}
			p := fmt.Sprintf("layer%d.%d", s, j)
			b := &Block{Name: p, Kind: Basic, Stage: s, Residual: true, Act: ReLU, OutPoint: true}
			if bottleneck {
				b.Kind = Bottleneck
				b.Layers = []*Layer{
					conv(p+".conv1", p+".bn1", in, planes, 1, 1, 1, ReLU, true),
					conv(p+".conv2", p+".bn2", planes, planes, 3, stride, 1, ReLU, true),
					conv(p+".conv3", p+".bn3", planes, out, 1, 1, 1, NoAct, false),
				}
			} else {
				b.Layers = []*Layer{
					conv(p+".conv1", p+".bn1", in, out, 3, stride, 1, ReLU, true),
					conv(p+".conv2", p+".bn2", out, out, 3, 1, 1, NoAct, false),
				}
			}
			if stride != 1 || in != out {
				b.Shortcut = conv(p+".downsample.0", p+".downsample.1", in, out, 1, stride, 1, NoAct, false)
			}
			net.Blocks = append(net.Blocks, b)
			in = out
		}
	}
	net.ClassifierWidth = in
	net.Blocks = append(net.Blocks, head("fc", "fc", in, classes))
	return net, net.Validate()
}

// MobileNetV2 describes torchvision's mobilenet_v2 (width 1.0) for inC×h×w
// inputs: features.0 = 3×3/2 conv to 32 + BN + ReLU6; features.1..17 the
// inverted residuals of the table (t, c, n, s) = (1,16,1,1), (6,24,2,2),
// (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1) — hidden
// width round(in·t), 1×1 expansion + BN + ReLU6 (absent when t = 1), 3×3
// depthwise (stride s on the first of a row) + BN + ReLU6, 1×1 linear
// projection + BN, plus the input when the stride is 1 and in = out;
// features.18 = 1×1 conv to 1280 + BN + ReLU6; global average pool;
// classifier.1 (classifier.0, dropout, is ignored). Stages: one per table
// row (1..7), features.18 alone (8).
func MobileNetV2(inC, h, w, classes int) (*Net, error) {
	return mobileNetV2("mobilenetv2", 2, inC, h, w, classes)
}

// MobileNetV2S1 ("mobilenetv2-s1") is MobileNetV2 with the stem
// (features.0.0) at stride 1, for 28×28 images such as Fashion-MNIST: the
// same layers and parameter names, total stride 16 instead of 32, so a 28×28
// input gives feature maps of 28 (stem, row 1), 14 (row 2), 7 (row 3),
// 4 (rows 4–5) and 2 (rows 6–7, features.18) where torchvision's strides
// reach 1×1 after row 6. torchvision's model with
// features[0][0] = Conv2d(inC, 32, 3, stride=1, padding=1, bias=False)
// computes the same function (scripts/train_mobilenetv2.py). Only the stem
// is changed: keeping the (6,24,2,2) row at stride 1 as well (final map 4×4)
// costs about three times the multiply-adds, which did not fit the CPU
// budget this testbed was trained and quantized in, and a 2×2 map still
// leaves the depthwise 3×3 layers of every row a spatial neighbourhood.
// The strides are not in a state_dict, so LoadArch picks this variant only
// when asked by name or when the file's metadata says model=mobilenetv2-s1.
func MobileNetV2S1(inC, h, w, classes int) (*Net, error) {
	return mobileNetV2("mobilenetv2-s1", 1, inC, h, w, classes)
}

// mobileNetV2 is MobileNetV2 named name, with the stem at stride stemStride.
func mobileNetV2(name string, stemStride, inC, h, w, classes int) (*Net, error) {
	net := &Net{Name: name, InC: inC, InH: h, InW: w, Classes: classes, NumStages: 8}
	net.Blocks = append(net.Blocks, &Block{Name: "features.0", Kind: Stem, OutPoint: true, Layers: []*Layer{
		conv("features.0.0", "features.0.1", inC, 32, 3, stemStride, 1, ReLU6, false)}})
	table := [][4]int{{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}}
	in, f := 32, 1
	for s, row := range table {
		t, c, n, stride := row[0], row[1], row[2], row[3]
		for j := 0; j < n; j++ {
			st := 1
			if j == 0 {
				st = stride
			}
			p := fmt.Sprintf("features.%d.conv.", f)
			hid := in * t
			b := &Block{Name: fmt.Sprintf("features.%d", f), Kind: InvertedResidual, Stage: s + 1,
				Residual: st == 1 && in == c, OutPoint: true}
			if t == 1 {
				b.Layers = []*Layer{
					conv(p+"0.0", p+"0.1", hid, hid, 3, st, hid, ReLU6, true),
					conv(p+"1", p+"2", hid, c, 1, 1, 1, NoAct, false),
				}
			} else {
				b.Layers = []*Layer{
					conv(p+"0.0", p+"0.1", in, hid, 1, 1, 1, ReLU6, true),
					conv(p+"1.0", p+"1.1", hid, hid, 3, st, hid, ReLU6, true),
					conv(p+"2", p+"3", hid, c, 1, 1, 1, NoAct, false),
				}
			}
			net.Blocks = append(net.Blocks, b)
			in = c
			f++
		}
	}
	last := fmt.Sprintf("features.%d", f)
	net.Blocks = append(net.Blocks, &Block{Name: last, Kind: Chain, Stage: 8, OutPoint: true, Layers: []*Layer{
		conv(last+".0", last+".1", in, 1280, 1, 1, 1, ReLU6, false)}})
	net.ClassifierWidth = 1280
	net.Blocks = append(net.Blocks, head("classifier", "classifier.1", 1280, classes))
	return net, net.Validate()
}

// RegNetXConfig is one RegNetX: per-stage depth and width, the group width of
// the 3×3 convolutions (bottleneck multiplier 1, stride 2 per stage, stem 32).
type RegNetXConfig struct {
	Depths, Widths []int
	GroupWidth     int
}

// RegNetX600MF and RegNetX3200MF are the stage tables torchvision's
// BlockParams.from_init_params computes from the RegNetX parameters
// (depth, w0, wa, wm, group width) = (16, 48, 36.97, 2.24, 24) and
// (25, 88, 26.31, 2.25, 48), the authors' regnetX_600M / regnetX_3200M configs.
var (
	RegNetX600MF  = RegNetXConfig{Depths: []int{1, 3, 5, 7}, Widths: []int{48, 96, 240, 528}, GroupWidth: 24}
	RegNetX3200MF = RegNetXConfig{Depths: []int{2, 6, 15, 2}, Widths: []int{96, 192, 432, 1008}, GroupWidth: 48}
)

// RegNetX describes torchvision's RegNet (no squeeze-excitation) for a stage
// table: stem.0 = 3×3/2 conv to 32 + stem.1 BN + ReLU; stages
// trunk_output.blockS with blocks blockS-J, each
// relu(f.c(relu(f.b(relu(f.a(x))))) + proj(x)): f.a 1×1 + BN + ReLU, f.b 3×3
// grouped (width / group width groups, stride 2 on the first block) + BN +
// ReLU, f.c 1×1 + BN; proj = 1×1 conv + BN when the width or stride changes,
// the identity otherwise; global average pool; fc.
func RegNetX(name string, cfg RegNetXConfig, inC, h, w, classes int) (*Net, error) {
	if len(cfg.Depths) != len(cfg.Widths) || cfg.GroupWidth < 1 {
		return nil, fmt.Errorf("models: RegNetX config %+v: want one width per stage and a group width ≥ 1", cfg)
	}
	net := &Net{Name: name, InC: inC, InH: h, InW: w, Classes: classes, NumStages: len(cfg.Depths)}
	net.Blocks = append(net.Blocks, &Block{Name: "stem", Kind: Stem, OutPoint: true, Layers: []*Layer{
		conv("stem.0", "stem.1", inC, 32, 3, 2, 1, ReLU, false)}})
	in := 32
	for s := 1; s <= len(cfg.Depths); s++ {
		wd := cfg.Widths[s-1]
		if wd%cfg.GroupWidth != 0 {
			return nil, fmt.Errorf("models: RegNetX stage %d width %d is not a multiple of the group width %d", s, wd, cfg.GroupWidth)
		}
		for j := 0; j < cfg.Depths[s-1]; j++ {
			stride := 1
			if j == 0 {
				stride = 2
			}
			p := fmt.Sprintf("trunk_output.block%d.block%d-%d.", s, s, j)
			b := &Block{Name: p[:len(p)-1], Kind: ResBottleneck, Stage: s, Residual: true, Act: ReLU, OutPoint: true,
				Layers: []*Layer{
					conv(p+"f.a.0", p+"f.a.1", in, wd, 1, 1, 1, ReLU, true),
					conv(p+"f.b.0", p+"f.b.1", wd, wd, 3, stride, wd/cfg.GroupWidth, ReLU, true),
					conv(p+"f.c.0", p+"f.c.1", wd, wd, 1, 1, 1, NoAct, false),
				}}
			if in != wd || stride != 1 {
				b.Shortcut = conv(p+"proj.0", p+"proj.1", in, wd, 1, stride, 1, NoAct, false)
			}
			net.Blocks = append(net.Blocks, b)
			in = wd
		}
	}
	net.ClassifierWidth = in
	net.Blocks = append(net.Blocks, head("fc", "fc", in, classes))
	return net, net.Validate()
}

// mnasRound is MNASNet's _round_to_multiple_of(v, 8): the nearest multiple of
// 8 (at least 8), rounded up instead when rounding down loses more than 10 %.
func mnasRound(v float64) int {
	n := max(8, int(v+4)/8*8)
	if float64(n) >= 0.9*v {
		return n
	}
	return n + 8
}

// MNASNet describes torchvision's MNASNet (version 2) with depth multiplier
// scale (mnasnet1_0: 1.0; the authors' released model: 2.0), channel depths
// d = round8(scale·[32, 16, 24, 40, 80, 96, 192, 320]): layers.0 3×3/2 conv to
// d0 + BN + ReLU (the stem); layers.3 3×3 depthwise + BN + ReLU and layers.6
// 1×1 to d1 + BN (block "layers.3-7"); stacks layers.8..13 of inverted
// residuals (kernel, stride, expansion, repeats) = (3,2,3,3), (5,2,3,3),
// (5,2,6,3), (3,1,6,2), (5,2,6,4), (3,1,6,1), each 1×1 expansion + BN +
// ReLU, k×k depthwise + BN + ReLU, 1×1 projection + BN, plus the input when
// the stride is 1 and in = out; layers.14 1×1 conv to 1280 + layers.15 BN +
// ReLU; global average pool; classifier.1. Stages: the separable block (1),
// each stack (2..7), layers.14 (8).
func MNASNet(scale float64, inC, h, w, classes int) (*Net, error) {
	if scale <= 0 {
		return nil, fmt.Errorf("models: MNASNet scale %g: want > 0", scale)
	}
	var d []int
	for _, v := range []float64{32, 16, 24, 40, 80, 96, 192, 320} {
		d = append(d, mnasRound(v*scale))
	}
	name := "mnasnet"
	if scale != 1 {
		name = fmt.Sprintf("mnasnet%g", scale)
	}
	net := &Net{Name: name, InC: inC, InH: h, InW: w, Classes: classes, NumStages: 8}
	net.Blocks = append(net.Blocks, &Block{Name: "layers.0", Kind: Stem, OutPoint: true, Layers: []*Layer{
		conv("layers.0", "layers.1", inC, d[0], 3, 2, 1, ReLU, false)}})
	net.Blocks = append(net.Blocks, &Block{Name: "layers.3-7", Kind: Chain, Stage: 1, Layers: []*Layer{
		conv("layers.3", "layers.4", d[0], d[0], 3, 1, d[0], ReLU, true),
		conv("layers.6", "layers.7", d[0], d[1], 1, 1, 1, NoAct, true),
	}})
	stacks := [][4]int{{3, 2, 3, 3}, {5, 2, 3, 3}, {5, 2, 6, 3}, {3, 1, 6, 2}, {5, 2, 6, 4}, {3, 1, 6, 1}}
	in := d[1]
	for s, st := range stacks {
		k, stride, e, n := st[0], st[1], st[2], st[3]
		out := d[s+2]
		for j := 0; j < n; j++ {
			str := 1
			if j == 0 {
				str = stride
			}
			bn := fmt.Sprintf("layers.%d.%d", 8+s, j)
			p := bn + ".layers."
			mid := in * e
			net.Blocks = append(net.Blocks, &Block{Name: bn, Kind: InvertedResidual, Stage: s + 2, Residual: in == out && str == 1,
				Layers: []*Layer{
					conv(p+"0", p+"1", in, mid, 1, 1, 1, ReLU, true),
					conv(p+"3", p+"4", mid, mid, k, str, mid, ReLU, true),
					conv(p+"6", p+"7", mid, out, 1, 1, 1, NoAct, true),
				}})
			in = out
		}
	}
	net.Blocks = append(net.Blocks, &Block{Name: "layers.14", Kind: Chain, Stage: 8, OutPoint: true, Layers: []*Layer{
		conv("layers.14", "layers.15", in, 1280, 1, 1, 1, ReLU, false)}})
	net.ClassifierWidth = 1280
	net.Blocks = append(net.Blocks, head("classifier", "classifier.1", 1280, classes))
	return net, net.Validate()
}
