package brecq

import (
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// chunk is the number of calibration images per forward pass when caching.
const chunk = 128

// stream holds, for every calibration image, the input of block `block` of
// the network under some mode (channel-first cache). Streams advance block
// by block as units are finished, so each unit costs one pass over its own
// blocks instead of a pass over the whole prefix.
type stream struct {
	block int
	x     *cache
}

// imageStream is the input of block 0: the calibration images, channel-first.
func (r *Quantizer) imageStream() (*stream, error) {
	n := r.calib.Shape().Dimensions[0]
	c := newCache(n, r.opt.MaxCacheMB, r.opt.CacheDir)
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		t := sliceImages(r.calib, start, end)
		d := t.Shape().Dimensions
		// [N, C, H, W] → [C, N, H, W] on the host.
		v := tensors.MustCopyFlatData[float32](t)
		S := d[2] * d[3]
		out := make([]float32, len(v))
		for i := 0; i < d[0]; i++ {
			for ch := 0; ch < d[1]; ch++ {
				copy(out[(ch*d[0]+i)*S:(ch*d[0]+i+1)*S], v[(i*d[1]+ch)*S:(i*d[1]+ch+1)*S])
			}
		}
		if err := c.appendTensor(tensors.FromFlatDataAndDimensions(out, d[1], d[0], d[2], d[3]), 1); err != nil {
			return nil, err
		}
	}
	return &stream{block: 0, x: c}, nil
}

// chunks calls fn with consecutive index ranges of at most chunk images.
func chunks(n int, fn func(idx []int) error) error {
	for start := 0; start < n; start += chunk {
		idx := make([]int, min(start+chunk, n)-start)
		for i := range idx {
			idx[i] = start + i
		}
		if err := fn(idx); err != nil {
			return err
		}
	}
	return nil
}

// advance runs blocks [s.block, to) under mode on the stream's images.
func (r *Quantizer) advance(s *stream, to int, mode Mode) error {
	if to < s.block {
		return errorf("stream at block %d cannot go back to %d", s.block, to)
	}
	if to == s.block {
		return nil
	}
	f := r.Q.feed(nil)
	from := s.block
	exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		ops := &qOps{q: r.Q, n: f.nodes(in), mode: mode}
		return []*graph.Node{r.Q.Net.ForwardRange(ops, in[len(f.keys)], from, to)}
	})
	if err != nil {
		return err
	}
	defer exec.Finalize()
	next := newCache(s.x.n, r.opt.MaxCacheMB, r.opt.CacheDir)
	err = chunks(s.x.n, func(idx []int) error {
		x, err := s.x.batch(idx)
		if err != nil {
			return err
		}
		res, err := exec.Call(f.args(x)...)
		if err != nil {
			return errorf("caching the input of block %d: %w", to, err)
		}
		return next.appendTensor(res[0], 1)
	})
	if err != nil {
		return err
	}
	// The old cache may be shared with another stream; an on-disk one is
	// closed (and its unlinked file freed) by os.File's finalizer.
	s.block, s.x = to, next
	return nil
}

// capture runs the network under mode from the stream src (the input of
// block src.block ≤ u.first) and returns the unit's input and its output
// (the value before any output quantizer). With fisher, instead of the
// output, the squared gradient of KL(FP ‖ mode) w.r.t. the unit output; the
// FP logits then come from fpSrc, the FP stream at the same block.
func (r *Quantizer) capture(mode Mode, u *Unit, fisher bool, src, fpSrc *stream) (in, out *cache, err error) {
	if src.block > u.first || (fisher && (fpSrc == nil || fpSrc.block != src.block)) {
		return nil, nil, errorf("unit %s: caching stream at the wrong block", u.Name)
	}
	f := r.Q.feed(nil)
	net := r.Q.Net
	from := src.block
	exec, err := graph.NewExec(r.backend, func(inputs []*graph.Node) []*graph.Node {
		nodes := f.nodes(inputs)
		x := inputs[len(f.keys)]
		var inNode, outNode *graph.Node
		ops := &qOps{q: r.Q, n: nodes, mode: mode}
		ops.onIn = func(l *models.Layer, x *graph.Node) {
			if l.Name == u.InLayer && inNode == nil {
				inNode = x
			}
		}
		ops.onOut = func(l *models.Layer, y *graph.Node) *graph.Node {
			if u.outKind == outLayer && l.Name == u.outName {
				outNode = y
			}
			return nil
		}
		ops.onAct = func(p string, x *graph.Node) *graph.Node {
			if u.outKind == outAct && p == u.outName {
				outNode = x
			}
			return nil
		}
		end := u.last + 1
		if fisher {
			end = len(net.Blocks)
		}
		y := net.ForwardRange(ops, x, from, end)
		if u.outKind == outLogits {
			outNode = y
		}
		if !fisher {
			return []*graph.Node{inNode, outNode}
		}
		fpLogits := net.ForwardRange(&qOps{q: r.Q, n: nodes, mode: FPMode()}, inputs[len(f.keys)+1], from, len(net.Blocks))
		pfp := graph.Softmax(graph.StopGradient(fpLogits), -1)
		kl := graph.ReduceAllMean(graph.ReduceSum(graph.Mul(pfp, graph.Sub(graph.Log(graph.MaxScalar(pfp, 1e-30)), graph.LogSoftmax(y, -1))), -1))
		g := graph.Gradient(kl, outNode)[0]
		return []*graph.Node{inNode, graph.Square(g)}
	})
	if err != nil {
		return nil, nil, err
	}
	defer exec.Finalize()
	in = newCache(src.x.n, r.opt.MaxCacheMB, r.opt.CacheDir)
	out = newCache(src.x.n, r.opt.MaxCacheMB, r.opt.CacheDir)
	ob := 1
	if u.outKind == outLogits {
		ob = 0
	}
	err = chunks(src.x.n, func(idx []int) error {
		x, err := src.x.batch(idx)
		if err != nil {
			return err
		}
		args := f.args(x)
		if fisher {
			xfp, err := fpSrc.x.batch(idx)
			if err != nil {
				return err
			}
			args = append(args, xfp)
		}
		res, err := exec.Call(args...)
		if err != nil {
			return errorf("caching unit %s: %w", u.Name, err)
		}
		if err := in.appendTensor(res[0], 1); err != nil {
			return err
		}
		return out.appendTensor(res[1], ob)
	})
	if err != nil {
		return nil, nil, err
	}
	return in, out, nil
}

// sliceImages returns images [start, end) of an [N, ...] tensor.
func sliceImages(images *tensors.Tensor, start, end int) *tensors.Tensor {
	dims := images.Shape().Dimensions
	per := 1
	for _, d := range dims[1:] {
		per *= d
	}
	all := tensors.MustCopyFlatData[float32](images)
	nd := append([]int{end - start}, dims[1:]...)
	return tensors.FromFlatDataAndDimensions(append([]float32(nil), all[start*per:end*per]...), nd...)
}
