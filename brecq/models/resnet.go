package models

import "fmt"

// CIFARResNet describes the CIFAR-style ResNet of He et al. (2016) with depth
// 6n+2 (20, 32, 56, ...) for inC×h×w inputs: conv3x3(16w) + BN + ReLU; three
// stages of n BasicBlocks with 16w, 32w, 64w channels, stride 2 at the first
// block of stages 2 and 3 with a 1x1 conv + BN shortcut; global average pool;
// linear to classes. width multiplies the channel counts (1 = the standard
// network). Names follow torchvision: conv1, bn1, layer{s}.{j}.conv{1,2},
// layer{s}.{j}.bn{1,2}, layer{s}.0.downsample.{0,1}, fc.
func CIFARResNet(depth, width, inC, h, w, classes int) (*Net, error) {
	if depth < 8 || (depth-2)%6 != 0 {
		return nil, fmt.Errorf("models: ResNet depth %d is not 6n+2 (20, 32, 44, 56, ...)", depth)
	}
	if width < 1 {
		return nil, fmt.Errorf("models: width multiplier %d < 1", width)
	}
	n := (depth - 2) / 6
	c0 := 16 * width
	net := &Net{Name: fmt.Sprintf("resnet%d", depth), InC: inC, InH: h, InW: w, Classes: classes, NumStages: 3}
	if width != 1 {
		net.Name = fmt.Sprintf("resnet%d-w%d", depth, width)
	}
	net.Blocks = append(net.Blocks, &Block{Name: "conv1", Kind: Stem, Stage: 0, Layers: []*Layer{{
		Name: "conv1", Kind: Conv, In: inC, Out: c0, Kernel: 3, Stride: 1, Groups: 1, BN: "bn1", Act: ReLU,
	}}, OutPoint: true})
	in := c0
	for s := 1; s <= 3; s++ {
		out := c0 << (s - 1)
		for j := 0; j < n; j++ {
			stride := 1
			if s > 1 && j == 0 {
				stride = 2
			}
			p := fmt.Sprintf("layer%d.%d", s, j)
			b := &Block{Name: p, Kind: Basic, Stage: s, Residual: true, Act: ReLU, OutPoint: true, Layers: []*Layer{
				{Name: p + ".conv1", Kind: Conv, In: in, Out: out, Kernel: 3, Stride: stride, Groups: 1, BN: p + ".bn1", Act: ReLU, Point: true},
				{Name: p + ".conv2", Kind: Conv, In: out, Out: out, Kernel: 3, Stride: 1, Groups: 1, BN: p + ".bn2"},
			}}
			if stride != 1 || in != out {
				b.Shortcut = &Layer{Name: p + ".downsample.0", Kind: Conv, In: in, Out: out, Kernel: 1, Stride: stride, Groups: 1, BN: p + ".downsample.1"}
			}
			net.Blocks = append(net.Blocks, b)
			in = out
		}
	}
	net.ClassifierWidth = in
	net.Blocks = append(net.Blocks, &Block{Name: "fc", Kind: Head, Stage: -1, Layers: []*Layer{{
		Name: "fc", Kind: Linear, In: in, Out: classes, Bias: true, Groups: 1,
	}}})
	return net, nil
}

// ResNet20 is CIFARResNet(20, 1, 1, 28, 28, 10): the network trained on
// Fashion-MNIST that ships with this project.
func ResNet20() *Net {
	n, _ := CIFARResNet(20, 1, 1, 28, 28, 10)
	return n
}
