package brecq

import (
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// chunkBytes is the working memory one caching forward pass may use,
// counted as chunkWork × the per-image size of its input over the chunk's
// images. On the Go backend a convolution builds its patches from k² slices
// and one concatenation, both live at once: at 224×224 the 7×7 stem's
// patches are 12× its input and a 3×3 convolution's 9× (a heap profile of
// ResNet-18 caching 128 images showed 1.2 GB of slices + 1.1 GB of
// concatenation live, ~18 MB per image); the factor covers both. 1 GiB keeps
// ResNet-20 on 28×28 at one pass per 128 images (256 for the activation
// range search), as before the bound.
var chunkBytes int64 = 1 << 30

const (
	chunkWork = 48
	maxChunk  = 128 // images per caching pass, at most
)

// chunkSize is the number of images per caching pass over inputs of
// perImage bytes each: ⌊chunkBytes / (chunkWork · perImage)⌋, clamped to
// [1, maxN]. Small images keep maxN (ResNet-20 on 28×28 throughout).
func chunkSize(perImage int64, maxN int) int { return imagesIn(chunkBytes, chunkWork*perImage, maxN) }

// imagesIn is ⌊budget / perImage⌋ clamped to [1, maxN].
func imagesIn(budget, perImage int64, maxN int) int {
	n := budget / max(perImage, 1)
	return int(max(1, min(n, int64(maxN))))
}

// EvalBytes is the working memory an evaluation call is sized for, counted
// as models.Net.ImageWorkBytes per image (128 MiB). The Go backend's actual
// use is about 3× that count — it runs independent ops in parallel and
// keeps their inputs alive meanwhile: `brecq eval` of ResNet-20 peaks at
// ~490 MB at 66 images per call, ~750 MB at 133 and ~1 150 MB at 267, with
// the same throughput.
const EvalBytes int64 = 128 << 20

// EvalBatch is the number of images per evaluation call of a network whose
// largest layer works on work bytes per image (models.Net.ImageWorkBytes:
// the layer's input, its patches twice and its output):
//
//	⌊EvalBytes / work⌋ clamped to [1, maxN]
//
// ResNet-20 on 1×28×28 (1 003 520 bytes in its 16-channel layers) gets 133
// images, ResNet-18 at 3×224×224 (18.6 MB in its stem) 7. Sizing by the
// input image instead had let ResNet-20 take 500 images per call, which
// added ~750 MB of resident memory to a quantize run's peak. The logits do
// not depend on the batch size.
func EvalBatch(work int64, maxN int) int { return imagesIn(EvalBytes, work, maxN) }

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
	d := r.calib.Shape().Dimensions
	n, C, S := d[0], d[1], d[2]*d[3]
	c := newCache(n, r.budget, r.opt.CacheDir)
	step := chunkSize(int64(C*S*4), maxChunk)
	for start := 0; start < n; start += step {
		end := min(start+step, n)
		b := end - start
		// [N, C, H, W] → [C, b, H, W] on the host.
		out := make([]float32, b*C*S)
		err := tensors.ConstFlatData(r.calib, func(v []float32) {
			for i := 0; i < b; i++ {
				for ch := 0; ch < C; ch++ {
					copy(out[(ch*b+i)*S:(ch*b+i+1)*S], v[((start+i)*C+ch)*S:((start+i)*C+ch+1)*S])
				}
			}
		})
		if err != nil {
			c.close()
			return nil, errorf("calibration images: %w", err)
		}
		if err := c.appendTensor(tensors.FromFlatDataAndDimensions(out, C, b, d[2], d[3]), 1); err != nil {
			c.close()
			return nil, err
		}
	}
	return &stream{block: 0, x: c}, nil
}

// chunks calls fn with consecutive index ranges of at most size images.
func chunks(n, size int, fn func(idx []int) error) error {
	for start := 0; start < n; start += size {
		idx := make([]int, min(start+size, n)-start)
		for i := range idx {
			idx[i] = start + i
		}
		if err := fn(idx); err != nil {
			return err
		}
	}
	return nil
}

// call runs exec on args and frees the host inputs among args[from:] (the
// chunk's images, built for this call) once it returns.
func call(exec *graph.Exec, args []any, from int) ([]*tensors.Tensor, error) {
	res, err := exec.Call(args...)
	for _, a := range args[from:] {
		if t, ok := a.(*tensors.Tensor); ok {
			t.FinalizeAll()
		}
	}
	return res, err
}

// finalize frees the buffers of tensors already copied to a cache.
func finalize(ts []*tensors.Tensor) {
	for _, t := range ts {
		t.FinalizeAll()
	}
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
	next := newCache(s.x.n, r.budget, r.opt.CacheDir)
	err = chunks(s.x.n, chunkSize(s.x.imageBytes(), maxChunk), func(idx []int) error {
		x, err := s.x.batch(idx)
		if err != nil {
			return err
		}
		res, err := call(exec, f.args(x), len(f.keys))
		if err != nil {
			return errorf("caching the input of block %d: %w", to, err)
		}
		defer finalize(res)
		return next.appendTensor(res[0], 1)
	})
	if err != nil {
		next.close()
		return err
	}
	// The old cache may be shared with another stream: close frees it at
	// its last owner's.
	s.x.close()
	s.block, s.x = to, next
	return nil
}

// capture runs the network under mode from the stream src (the input of
// block src.block ≤ u.first) and returns the unit's input and its output
// (the value before any output quantizer). With fisher, instead of the
// output, the squared gradient of KL(FP ‖ mode)/128 w.r.t. the unit output; the
// FP logits then come from fpSrc, the FP stream at the same block. Only the
// caches asked for (keepIn, keepOut) are kept; the other result is nil.
func (r *Quantizer) capture(mode Mode, u *Unit, fisher bool, src, fpSrc *stream, keepIn, keepOut bool) (in, out *cache, err error) {
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
		// Σ over the chunk's images of KL / maxChunk: each image's gradient
		// does not depend on how many share its pass (the mean over a chunk
		// of 128, as when every pass took 128 images).
		kl := graph.DivScalar(graph.ReduceAllSum(graph.Mul(pfp, graph.Sub(graph.Log(graph.MaxScalar(pfp, 1e-30)), graph.LogSoftmax(y, -1)))), maxChunk)
		g := graph.Gradient(kl, outNode)[0]
		return []*graph.Node{inNode, graph.Square(g)}
	})
	if err != nil {
		return nil, nil, err
	}
	defer exec.Finalize()
	if keepIn {
		in = newCache(src.x.n, r.budget, r.opt.CacheDir)
	}
	if keepOut {
		out = newCache(src.x.n, r.budget, r.opt.CacheDir)
	}
	ob := 1
	if u.outKind == outLogits {
		ob = 0
	}
	work := src.x.imageBytes()
	if fisher {
		work *= 2
	}
	size := chunkSize(work, maxChunk)
	if fisher {
		size = min(size, fisherBatch(net, from))
	}
	err = chunks(src.x.n, size, func(idx []int) error {
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
		res, err := call(exec, args, len(f.keys))
		if err != nil {
			return errorf("caching unit %s: %w", u.Name, err)
		}
		defer finalize(res)
		if in != nil {
			if err := in.appendTensor(res[0], 1); err != nil {
				return err
			}
		}
		if out != nil {
			return out.appendTensor(res[1], ob)
		}
		return nil
	})
	if err != nil {
		for _, c := range []*cache{in, out} {
			if c != nil {
				c.close()
			}
		}
		return nil, nil, err
	}
	return in, out, nil
}

// fisherBatch is the number of images per Fisher pass of a unit whose
// stream starts at block from: the pass differentiates the rest of the
// network, which keeps models.Net.BackwardWorkBytes(from, end) per image
// alive,
//
//	⌊EvalBytes / BackwardWorkBytes(from, end)⌋ clamped to [1, maxChunk]
//
// (22 images for ResNet-20 on 1×28×28 from its first block). The pass sums
// KL over images and divides by maxChunk, so an image's gradient does not
// depend on how many share its pass.
func fisherBatch(net *models.Net, from int) int {
	return imagesIn(EvalBytes, net.BackwardWorkBytes(from, len(net.Blocks)), maxChunk)
}

// sliceImages returns images [start, end) of an [N, ...] tensor (a copy).
func sliceImages(images *tensors.Tensor, start, end int) *tensors.Tensor {
	dims := images.Shape().Dimensions
	per := 1
	for _, d := range dims[1:] {
		per *= d
	}
	out := make([]float32, (end-start)*per)
	tensors.ConstFlatData(images, func(all []float32) { copy(out, all[start*per:end*per]) })
	nd := append([]int{end - start}, dims[1:]...)
	return tensors.FromFlatDataAndDimensions(out, nd...)
}
