package brecq

import (
	"fmt"

	"github.com/gomlx/gomlx/core/tensors"
)

// cache holds one tensor per calibration image (a unit's input, FP output or
// Fisher weights), stored image by image so that a random minibatch is a few
// contiguous copies. In graphs, the batch axis is axis 1 for channel-first
// activations ([C,N,H,W] or [C,N]) and axis 0 for logits ([N,K]).
type cache struct {
	n         int
	dims      []int // graph dims with the batch axis removed
	batchAxis int
	data      []float32
}

func (c *cache) per() int {
	p := 1
	for _, d := range c.dims {
		p *= d
	}
	return p
}

// appendTensor adds the images of t (graph layout) to the cache.
func (c *cache) appendTensor(t *tensors.Tensor, batchAxis int) error {
	dims := t.Shape().Dimensions
	v := tensors.MustCopyFlatData[float32](t)
	rest := append(append([]int{}, dims[:batchAxis]...), dims[batchAxis+1:]...)
	if c.dims == nil {
		c.dims, c.batchAxis = rest, batchAxis
	} else if fmt.Sprint(c.dims) != fmt.Sprint(rest) || c.batchAxis != batchAxis {
		return fmt.Errorf("brecq: cache shape changed from %v to %v", c.dims, rest)
	}
	nb := dims[batchAxis]
	if batchAxis == 0 {
		c.data = append(c.data, v...)
		c.n += nb
		return nil
	}
	// Channel-first [C, N, S...]: image j's values are v[(c*N + j)*S + s].
	C := dims[0]
	S := len(v) / (C * nb)
	start := len(c.data)
	c.data = append(c.data, make([]float32, nb*C*S)...)
	for j := 0; j < nb; j++ {
		dst := c.data[start+j*C*S : start+(j+1)*C*S]
		for ch := 0; ch < C; ch++ {
			copy(dst[ch*S:(ch+1)*S], v[(ch*nb+j)*S:(ch*nb+j+1)*S])
		}
	}
	c.n += nb
	return nil
}

// batch gathers the images idx into a graph-layout tensor.
func (c *cache) batch(idx []int) *tensors.Tensor {
	per := c.per()
	b := len(idx)
	out := make([]float32, b*per)
	dims := make([]int, 0, len(c.dims)+1)
	if c.batchAxis == 0 {
		for j, i := range idx {
			copy(out[j*per:(j+1)*per], c.data[i*per:(i+1)*per])
		}
		dims = append(append(dims, b), c.dims...)
	} else {
		C := c.dims[0]
		S := per / C
		for j, i := range idx {
			src := c.data[i*per : (i+1)*per]
			for ch := 0; ch < C; ch++ {
				copy(out[(ch*b+j)*S:(ch*b+j+1)*S], src[ch*S:(ch+1)*S])
			}
		}
		dims = append(append(append(dims, C), b), c.dims[1:]...)
	}
	return tensors.FromFlatDataAndDimensions(out, dims...)
}

// bytes is the cache's size in memory.
func (c *cache) bytes() int64 { return int64(len(c.data)) * 4 }
