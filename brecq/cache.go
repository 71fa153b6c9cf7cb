package brecq

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sync"

	"github.com/gomlx/gomlx/core/tensors"
)

// cache holds one tensor per calibration image (a unit's input, FP output or
// Fisher weights), stored image by image so that a random minibatch is a few
// contiguous copies. In graphs, the batch axis is axis 1 for channel-first
// activations ([C,N,H,W] or [C,N]) and axis 0 for logits ([N,K]).
//
// A cache that knows how many images it will hold (expect) asks its budget,
// when it stores its first values, for expect × the per-image size: granted,
// the cache lives in memory (allocated once); refused, it keeps its images in
// an unlinked temporary file in dir instead, and minibatches are read back
// with one ReadAt per image (served from the page cache while memory allows,
// which does not count in the process's resident memory). close gives the
// bytes back to the budget.
type cache struct {
	n         int
	dims      []int // graph dims with the batch axis removed
	batchAxis int
	data      []float32

	expect   int        // images the cache will hold (0: unknown, never on disk)
	budget   *memBudget // shared bound of the caches in memory (nil: none)
	reserved int64      // bytes held from budget
	dir      string     // folder of the temporary file ("" = os.TempDir())
	file     *os.File
	buf      []byte
	shares   int // further owners (streams) that must close it before it is freed
}

// memBudget bounds the total size of the caches a run keeps in memory at
// once: Σ reserved ≤ limit over every live cache (limit 0 = no bound).
type memBudget struct {
	mu          sync.Mutex
	limit, used int64
	peak        int64 // largest used
}

// newMemBudget returns a budget of maxMB megabytes (10^6 bytes; 0 = none).
func newMemBudget(maxMB float64) *memBudget { return &memBudget{limit: int64(maxMB * 1e6)} }

// reserve takes n bytes from the budget if they fit.
func (b *memBudget) reserve(n int64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.used+n > b.limit {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

// release gives n bytes back.
func (b *memBudget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// newCache returns an empty cache for n images under budget (nil = no
// bound), kept in a file in dir ("" = the system's temporary folder) when
// the budget refuses it.
func newCache(n int, budget *memBudget, dir string) *cache {
	return &cache{expect: n, budget: budget, dir: dir}
}

// onDisk reports whether the cache keeps its images in a file.
func (c *cache) onDisk() bool { return c.file != nil }

// share adds an owner: the cache is freed at the last owner's close.
func (c *cache) share() *cache {
	c.shares++
	return c
}

// close frees the cache (its memory, its budget and its file, if any) once
// every owner has closed it; it is then empty.
func (c *cache) close() {
	if c.shares > 0 {
		c.shares--
		return
	}
	if c.file != nil {
		c.file.Close()
		c.file = nil
	}
	c.data = nil
	c.budget.release(c.reserved)
	c.reserved = 0
}

// store appends images (image-major float32 values) to memory or the file.
func (c *cache) store(v []float32) error {
	if c.file == nil && c.data == nil && c.expect > 0 {
		total := int64(c.expect) * int64(c.per()) * 4
		if c.budget.reserve(total) {
			c.reserved = total
			c.data = make([]float32, 0, c.expect*c.per())
		} else {
			f, err := os.CreateTemp(c.dir, "brecq-cache-*")
			if err != nil {
				return errorf("disk cache: %w", err)
			}
			os.Remove(f.Name()) // unlinked: the space is freed when the file is closed
			c.file = f
		}
	}
	if c.file == nil {
		c.data = append(c.data, v...)
		return nil
	}
	return c.writeFloats(v)
}

func (c *cache) writeFloats(v []float32) error {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if _, err := c.file.Write(b); err != nil {
		return errorf("disk cache %s: %w", c.file.Name(), err)
	}
	return nil
}

// mean is the mean of every value in the cache.
func (c *cache) mean() (float64, error) {
	sum := 0.0
	for i := 0; i < c.n; i++ {
		img, err := c.image(i)
		if err != nil {
			return 0, err
		}
		for _, v := range img {
			sum += float64(v)
		}
	}
	return sum / float64(c.n*c.per()), nil
}

// apply replaces every value v by fn(v).
func (c *cache) apply(fn func(float32) float32) error {
	if c.file == nil {
		for i, v := range c.data {
			c.data[i] = fn(v)
		}
		return nil
	}
	per := c.per()
	b := make([]byte, 4*per)
	for i := 0; i < c.n; i++ {
		off := int64(i) * int64(per) * 4
		if _, err := c.file.ReadAt(b, off); err != nil {
			return errorf("disk cache %s: %w", c.file.Name(), err)
		}
		for j := 0; j < per; j++ {
			v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
			binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(fn(v)))
		}
		if _, err := c.file.WriteAt(b, off); err != nil {
			return errorf("disk cache %s: %w", c.file.Name(), err)
		}
	}
	return nil
}

// image returns the values of image i (valid until the next call).
func (c *cache) image(i int) ([]float32, error) {
	per := c.per()
	if c.file == nil {
		return c.data[i*per : (i+1)*per], nil
	}
	if cap(c.buf) < 4*per {
		c.buf = make([]byte, 4*per)
	}
	b := c.buf[:4*per]
	if _, err := c.file.ReadAt(b, int64(i)*int64(per)*4); err != nil {
		return nil, errorf("disk cache %s: reading image %d: %w", c.file.Name(), i, err)
	}
	out := make([]float32, per)
	for j := range out {
		out[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
	}
	return out, nil
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
		return errorf("cache shape changed from %v to %v", c.dims, rest)
	}
	nb := dims[batchAxis]
	if batchAxis == 0 {
		c.n += nb
		return c.store(v)
	}
	// Channel-first [C, N, S...]: image j's values are v[(c*N + j)*S + s].
	C := dims[0]
	S := len(v) / (C * nb)
	img := make([]float32, nb*C*S)
	for j := 0; j < nb; j++ {
		dst := img[j*C*S : (j+1)*C*S]
		for ch := 0; ch < C; ch++ {
			copy(dst[ch*S:(ch+1)*S], v[(ch*nb+j)*S:(ch*nb+j+1)*S])
		}
	}
	c.n += nb
	return c.store(img)
}

// batch gathers the images idx into a graph-layout tensor.
func (c *cache) batch(idx []int) (*tensors.Tensor, error) {
	per := c.per()
	b := len(idx)
	out := make([]float32, b*per)
	dims := make([]int, 0, len(c.dims)+1)
	if c.batchAxis == 0 {
		for j, i := range idx {
			img, err := c.image(i)
			if err != nil {
				return nil, err
			}
			copy(out[j*per:(j+1)*per], img)
		}
		dims = append(append(dims, b), c.dims...)
	} else {
		C := c.dims[0]
		S := per / C
		for j, i := range idx {
			src, err := c.image(i)
			if err != nil {
				return nil, err
			}
			for ch := 0; ch < C; ch++ {
				copy(out[(ch*b+j)*S:(ch*b+j+1)*S], src[ch*S:(ch+1)*S])
			}
		}
		dims = append(append(append(dims, C), b), c.dims[1:]...)
	}
	return tensors.FromFlatDataAndDimensions(out, dims...), nil
}

// imageBytes is the size of one image's values.
func (c *cache) imageBytes() int64 { return int64(c.per()) * 4 }

// bytes is the cache's size (in memory or on disk).
func (c *cache) bytes() int64 { return int64(c.n) * int64(c.per()) * 4 }
