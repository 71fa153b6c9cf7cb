package models

// ImageWorkBytes is the largest working set one image needs in any single
// layer of the forward pass, in bytes (float32), at the network's input size
// InC×InH×InW: for a convolution with k×k kernel, input C×H×W and output
// O×H'×W' (H' = ⌊(H + 2⌊(k−1)/2⌋ − k)/s⌋ + 1),
//
//	4 · (C·H·W + 2·k²·C·H'·W' + O·H'·W')
//
// — its input, its k² shifted copies made twice on the Go backend (the slices,
// then their concatenation into patches) and its output; a linear layer
// counts 4·(in + out). Spatial sizes follow the block structure: a block's
// layers in sequence from the block input, the shortcut on the block input,
// the stem's max-pool halving after it. Evaluation batches are sized from it
// (brecq.EvalBatch): activations, not the input image, decide the memory of a
// pass — a 1-channel 28×28 image is 3 KB, ResNet-20's 16-channel 3×3 layers
// work on ~0.9 MB per image.
func (n *Net) ImageWorkBytes() int64 {
	var peak int64
	conv := func(l *Layer, c, h, w int) (int, int, int) {
		ho, wo := convOut(h, l.Kernel, l.Stride), convOut(w, l.Kernel, l.Stride)
		k2 := int64(l.Kernel * l.Kernel)
		b := 4 * (int64(c*h*w) + 2*k2*int64(c*ho*wo) + int64(l.Out*ho*wo))
		peak = max(peak, b)
		return l.Out, ho, wo
	}
	c, h, w := n.InC, n.InH, n.InW
	for _, b := range n.Blocks {
		if b.Kind == Head {
			for _, l := range b.Layers {
				peak = max(peak, 4*int64(l.In+l.Out))
			}
			continue
		}
		bc, bh, bw := c, h, w
		for _, l := range b.Layers {
			if l.Kind == Linear {
				peak = max(peak, 4*int64(l.In+l.Out))
				c, h, w = l.Out, 1, 1
				continue
			}
			c, h, w = conv(l, c, h, w)
		}
		if b.Shortcut != nil {
			conv(b.Shortcut, bc, bh, bw)
		}
		if b.MaxPool {
			h, w = (h-1)/2+1, (w-1)/2+1
		}
	}
	return peak
}

// convOut is ⌊(n + 2p − k)/s⌋ + 1 with p = ⌊(k−1)/2⌋ (nn.ConvOutSize).
func convOut(n, k, s int) int {
	p := (k - 1) / 2
	return (n+2*p-k)/s + 1
}
