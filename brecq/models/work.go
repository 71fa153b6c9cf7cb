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
	n.walkLayers(func(_ int, l *Layer, c, h, w, ho, wo int) {
		if l.Kind == Linear {
			peak = max(peak, 4*int64(l.In+l.Out))
			return
		}
		k2 := int64(l.Kernel * l.Kernel)
		peak = max(peak, 4*(int64(c*h*w)+2*k2*int64(c*ho*wo)+int64(l.Out*ho*wo)))
	})
	return peak
}

// BackwardWorkBytes is the memory per image, in bytes (float32), that a
// forward and backward pass over blocks [from, end) keeps alive until the
// backward pass reaches each layer: for every convolution its input, its
// patches (kept for the kernel's gradient) and its output,
//
//	4 · (C·H·W + k²·C·H'·W' + O·H'·W')
//
// and 4·(in + out) for a linear layer, summed over the layers (shapes as in
// ImageWorkBytes). The Fisher pass of a unit differentiates the rest of the
// network and is batched by it.
func (n *Net) BackwardWorkBytes(from, end int) int64 {
	var sum int64
	n.walkLayers(func(bi int, l *Layer, c, h, w, ho, wo int) {
		if bi < from || bi >= end {
			return
		}
		if l.Kind == Linear {
			sum += 4 * int64(l.In+l.Out)
			return
		}
		k2 := int64(l.Kernel * l.Kernel)
		sum += 4 * (int64(c*h*w) + k2*int64(c*ho*wo) + int64(l.Out*ho*wo))
	})
	return sum
}

// walkLayers calls fn for every layer of the forward pass at the network's
// input size, in order, with its block index, its input C×H×W and its output
// size H'×W' (1×1 for linear layers): a block's layers in sequence from the
// block input, the shortcut on the block input, the stem's max-pool halving
// after it; the head's layers on the pooled features.
func (n *Net) walkLayers(fn func(bi int, l *Layer, c, h, w, ho, wo int)) {
	c, h, w := n.InC, n.InH, n.InW
	for bi, b := range n.Blocks {
		if b.Kind == Head {
			for _, l := range b.Layers {
				fn(bi, l, l.In, 1, 1, 1, 1)
			}
			continue
		}
		bc, bh, bw := c, h, w
		for _, l := range b.Layers {
			if l.Kind == Linear {
				fn(bi, l, l.In, 1, 1, 1, 1)
				c, h, w = l.Out, 1, 1
				continue
			}
			ho, wo := convOut(h, l.Kernel, l.Stride), convOut(w, l.Kernel, l.Stride)
			fn(bi, l, c, h, w, ho, wo)
			c, h, w = l.Out, ho, wo
		}
		if b.Shortcut != nil {
			l := b.Shortcut
			fn(bi, l, bc, bh, bw, convOut(bh, l.Kernel, l.Stride), convOut(bw, l.Kernel, l.Stride))
		}
		if b.MaxPool {
			h, w = (h-1)/2+1, (w-1)/2+1
		}
	}
}

// convOut is ⌊(n + 2p − k)/s⌋ + 1 with p = ⌊(k−1)/2⌋ (nn.ConvOutSize).
func convOut(n, k, s int) int {
	p := (k - 1) / 2
	return (n+2*p-k)/s + 1
}
