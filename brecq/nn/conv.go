// Package nn holds the few neural-network operations the brecq models need,
// written so that they are fast on GoMLX's pure-Go backend and native on XLA:
// Conv2D with ConvAuto picks its path from the graph's backend (AutoPath), no
// global setting.
//
// Activations use the channels-first layout [C, N, H, W] (channel, batch,
// row, column) throughout: on the Go backend a convolution then becomes
// shifted slices concatenated on the leading axis and one matrix multiply
// (batched over groups) with no transposes of activation-sized tensors; a
// depthwise one of moderate width becomes one banded matrix multiply per
// channel and kernel-row slices. Weights keep PyTorch's
// layouts ([out, in/groups, kh, kw] for convolutions, [out, in] for linear).
package nn

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// ConvPath selects how Conv2D is computed.
type ConvPath int

const (
	// ConvAuto takes the path AutoPath gives for the graph's backend.
	ConvAuto ConvPath = iota
	// ConvPatches builds the kh·kw shifted slices of the zero-padded input,
	// concatenates them and multiplies by the reshaped kernel (one DotGeneral,
	// batched over groups); a depthwise convolution with output width ≤
	// bandedMaxOutWidth is instead computed by banded row matrices
	// (depthwiseBanded), which is faster there.
	ConvPatches
	// ConvNative uses the backend's convolution (graph.ConvGeneral).
	ConvNative

	// convShiftDot is ConvPatches with the patches of a dense 3×3 stride-1
	// convolution built by two matrix multiplies with constant 0/1 shift
	// matrices instead of Slice (shiftDotPatches); other convolutions fall
	// back to ConvPatches. Measured slower (see the benchmarks), so not
	// exported and not a default.
	convShiftDot

	// convBanded computes every depthwise convolution (groups = C = O) by
	// depthwiseBanded, convBatched none; otherwise both are ConvPatches.
	// Tests and benchmarks use them to reach both depthwise routes.
	convBanded
	convBatched

	// convFlatPath is ConvPatches with dense stride-1 convolutions built by
	// flatPatches and convFlat: no Slice of the input, one of the output, at
	// the price of a matrix multiply over a larger, zero-padded grid. Measured
	// faster at 16 channels 28×28 and slower at 64 channels 7×7 (see the
	// benchmarks), so not exported and not a default.
	convFlatPath
)

// bandedMaxOutWidth is the largest output width at which ConvPatches
// computes a depthwise convolution by banded row matrices. Their matrix
// multiply costs ∝ input width per output value, the patches' element copies
// ∝ kh·kw. 3×3 forward + backward on the Go backend (BenchmarkConvFwdBwd,
// banded / batched patches time, two runs on a shared 2-core machine):
// 32 channels, batch 32, 56×56: 0.65–0.9 at stride 1, 0.7–0.75 at stride 2;
// batch 8, 112×112: 1.0–1.25 at stride 1 (32 channels), 0.6–0.8 at stride 2
// (96 channels, output width 56).
const bandedMaxOutWidth = 56

// AutoPath is the path ConvAuto takes on backend b: ConvPatches on GoMLX's
// pure-Go backend (b.String() == gobackend.BackendName, "go"), whose own
// convolution has no SIMD path; ConvNative on every other backend (XLA).
func AutoPath(b compute.Backend) ConvPath {
	if b != nil && b.String() == gobackend.BackendName {
		return ConvPatches
	}
	return ConvNative
}

// ConvOutSize is the output size of a convolution along one spatial axis with
// PyTorch's "same-style" padding p = (k−1)/2: ⌊(n + 2p − k)/s⌋ + 1.
func ConvOutSize(n, k, stride int) int {
	p := (k - 1) / 2
	return (n+2*p-k)/stride + 1
}

// Conv2D computes the 2-D cross-correlation used by PyTorch's nn.Conv2d with
// padding (k−1)/2 and no bias, for G groups:
//
//	y[o,n,i,j] = Σ_{c<C/G, u<kh, v<kw} w[o,c,u,v] · x̃[⌊o/(O/G)⌋·C/G + c, n, s·i + u, s·j + v]
//
// where x̃ is x zero-padded by (k−1)/2 on each spatial side and s the stride.
// G divides both C and O: G = 1 is a dense convolution, G = C a depthwise one
// (MobileNetV2, MNasNet), C/G the group width otherwise (RegNetX).
// x is [C, N, H, W]; w is [O, C/G, kh, kw]; the result is [O, N, Ho, Wo] with
// Ho = ConvOutSize(H, kh, s), Wo = ConvOutSize(W, kw, s).
//
// path ConvAuto takes AutoPath(x's backend); ConvPatches and ConvNative force a
// path (tests compare them).
func Conv2D(x, w *graph.Node, stride, groups int, path ConvPath) *graph.Node {
	if x.Rank() != 4 || w.Rank() != 4 {
		panic(fmt.Sprintf("nn.Conv2D: want x [C,N,H,W] and w [O,I,kh,kw], got %s and %s", x.Shape(), w.Shape()))
	}
	C := x.Shape().Dimensions[0]
	O, I, kh, kw := w.Shape().Dimensions[0], w.Shape().Dimensions[1], w.Shape().Dimensions[2], w.Shape().Dimensions[3]
	if groups < 1 || C%groups != 0 || O%groups != 0 || I*groups != C {
		panic(fmt.Sprintf("nn.Conv2D: %d groups do not fit input channels %d, kernel %s", groups, C, w.Shape()))
	}
	if stride < 1 {
		panic(fmt.Sprintf("nn.Conv2D: stride %d < 1", stride))
	}
	if path == ConvAuto {
		path = AutoPath(x.Graph().Backend())
	}
	if path == ConvNative {
		return convNative(x, w, stride, groups, kh, kw)
	}
	if groups == C && O == C && (path == convBanded ||
		path == ConvPatches && ConvOutSize(x.Shape().Dimensions[3], kw, stride) <= bandedMaxOutWidth) {
		return depthwiseBanded(x, w, stride, kh, kw)
	}
	if stride == 1 && kh*kw > 1 {
		route := ConvPatches
		if groups == 1 && (path == convFlatPath || path == convShiftDot && kh == 3 && kw == 3) {
			route = path
		}
		return convPatchesS1(x, w, groups, kh, kw, route)
	}
	return convPatches(x, w, stride, groups, kh, kw, false)
}

func convNative(x, w *graph.Node, stride, groups, kh, kw int) *graph.Node {
	axes := graph.ConvolveAxesConfig{
		InputBatch: 1, InputChannels: 0, InputSpatial: []int{2, 3},
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
		OutputBatch: 1, OutputChannels: 0, OutputSpatial: []int{2, 3},
	}
	ph, pw := (kh-1)/2, (kw-1)/2
	return graph.ConvGeneral(x, w, axes, []int{stride, stride}, [][2]int{{ph, ph}, {pw, pw}}, nil, nil, groups, 1)
}

// shiftedSlices returns the kh·kw views x̃[:, :, s·i+u, s·j+v] of the
// zero-padded input, each [C, N, Ho, Wo], in (u, v) row-major order. Padding
// is built with Concatenate (Pad has no gradient on the Go backend).
func shiftedSlices(x *graph.Node, stride, kh, kw int) (slices []*graph.Node, ho, wo int) {
	dims := x.Shape().Dimensions
	H, W := dims[2], dims[3]
	ph, pw := (kh-1)/2, (kw-1)/2
	ho, wo = ConvOutSize(H, kh, stride), ConvOutSize(W, kw, stride)
	xp := zeroPad(x, ph, pw)
	for u := 0; u < kh; u++ {
		for v := 0; v < kw; v++ {
			if kh == 1 && kw == 1 && stride == 1 {
				slices = append(slices, xp)
				continue
			}
			s := graph.Slice(xp, graph.AxisRange(), graph.AxisRange(),
				graph.AxisRange(u, u+stride*(ho-1)+1).Stride(stride),
				graph.AxisRange(v, v+stride*(wo-1)+1).Stride(stride))
			slices = append(slices, s)
		}
	}
	return slices, ho, wo
}

// canPair reports whether pairedShiftedSlices applies to x [C,N,H,W] for a
// kernel of width kw: x is float32 and W and the padded width are even.
func canPair(x *graph.Node, kw int) bool {
	W := x.Shape().Dimensions[3]
	return x.DType() == dtypes.Float32 && W%2 == 0 && (W+kw-1)%2 == 0
}

// pairedShiftedSlices is shiftedSlices at stride 1 with half the element
// copies: the Go backend's Slice moves one element per step whatever its
// size, so the padded input is reinterpreted (Bitcast) as pairs of
// float32 in one int64 and sliced as such. A column offset v must then be
// even; an odd one is read from a copy of the padded input moved right by
// one column (a Concatenate with a zero column on each side), where it is
// v + 1. Values are moved bit for bit, so the result equals shiftedSlices'.
// Bitcast has no gradient: use it only where no gradient flows through the
// slices (the inputs of convPatchesS1's two convolutions).
func pairedShiftedSlices(x *graph.Node, kh, kw int) (slices []*graph.Node, ho, wo int) {
	g := x.Graph()
	dims := x.Shape().Dimensions
	C, N, H, W := dims[0], dims[1], dims[2], dims[3]
	ph, pw := (kh-1)/2, (kw-1)/2
	xp := zeroPad(x, ph, pw) // [C, N, H+2ph, W+2pw]
	Hp, Wp := H+2*ph, W+2*pw
	pairs := func(t *graph.Node, width int) *graph.Node {
		return graph.Bitcast(graph.Reshape(t, C, N, Hp, width/2, 2), dtypes.Int64)
	}
	even := pairs(xp, Wp)
	var odd *graph.Node
	if kw > 1 {
		z := graph.Zeros(g, shapes.Make(x.DType(), C, N, Hp, 1))
		odd = pairs(graph.Concatenate([]*graph.Node{z, xp, z}, 3), Wp+2)
	}
	for u := 0; u < kh; u++ {
		for v := 0; v < kw; v++ {
			src, start := even, v
			if v%2 == 1 {
				src, start = odd, v+1
			}
			s := graph.Slice(src, graph.AxisRange(), graph.AxisRange(), graph.AxisRange(u, u+H), graph.AxisRange(start/2, start/2+W/2))
			// StopGradient: autodiff would otherwise carry the (unused) gradient of the
			// patches back to this Bitcast, which has none.
			slices = append(slices, graph.StopGradient(graph.Reshape(graph.Bitcast(s, dtypes.Float32), C, N, H, W)))
		}
	}
	return slices, H, W
}

// zeroPad pads the two spatial axes of x [C,N,H,W] with ph rows and pw
// columns of zeros on each side, using Concatenate so gradients flow.
func zeroPad(x *graph.Node, ph, pw int) *graph.Node {
	if ph == 0 && pw == 0 {
		return x
	}
	g := x.Graph()
	dims := x.Shape().Dimensions
	C, N, H, W := dims[0], dims[1], dims[2], dims[3]
	dt := x.DType()
	if pw > 0 {
		z := graph.Zeros(g, shapes.Make(dt, C, N, H, pw))
		x = graph.Concatenate([]*graph.Node{z, x, z}, 3)
		W += 2 * pw
	}
	if ph > 0 {
		z := graph.Zeros(g, shapes.Make(dt, C, N, ph, W))
		x = graph.Concatenate([]*graph.Node{z, x, z}, 2)
	}
	return x
}

// convPatches computes the convolution as patches times the kernel: the
// kh·kw shifted slices of the padded input stacked on the channel axis and
// multiplied by the kernel reshaped to match, in one DotGeneral. With groups,
// the patch rows and the kernel are split by group and the DotGeneral takes
// the group as its batch axis (leading in both operands, so the Go backend
// runs it without transposing activation-sized tensors):
//
//	patches[g, (u,v,c), (n,i,j)] = x̃[g·C/G + c, n, s·i + u, s·j + v]
//	wm[g, o', (u,v,c)]           = w[g·O/G + o', c, u, v]
//	y[g·O/G + o', (n,i,j)]       = Σ_{(u,v,c)} wm[g, o', (u,v,c)] · patches[g, (u,v,c), (n,i,j)]
//
// shiftDot (dense 3×3 stride 1 only) builds the patches with shiftDotPatches.
func convPatches(x, w *graph.Node, stride, groups, kh, kw int, shiftDot bool) *graph.Node {
	return convPatchesWith(x, w, stride, groups, kh, kw, shiftDot, false)
}

// convPatchesWith is convPatches; paired (stride 1, used where no gradient
// flows through the slices) builds the slices with pairedShiftedSlices.
func convPatchesWith(x, w *graph.Node, stride, groups, kh, kw int, shiftDot, paired bool) *graph.Node {
	C, N := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	O := w.Shape().Dimensions[0]
	K := kh * kw
	if shiftDot {
		H, W := x.Shape().Dimensions[2], x.Shape().Dimensions[3]
		wm := graph.Reshape(graph.TransposeAllAxes(w, 0, 2, 3, 1), O, K*C)
		y := graph.DotGeneral(wm, []int{1}, nil, shiftDotPatches(x), []int{0}, nil)
		return graph.Reshape(y, O, N, H, W)
	}
	var slices []*graph.Node
	var ho, wo int
	if paired && stride == 1 && canPair(x, kw) {
		slices, ho, wo = pairedShiftedSlices(x, kh, kw)
	} else {
		slices, ho, wo = shiftedSlices(x, stride, kh, kw)
	}
	M := N * ho * wo
	if groups == 1 {
		var patches *graph.Node
		if len(slices) == 1 {
			patches = slices[0]
		} else {
			patches = graph.Concatenate(slices, 0) // [K·C, N, Ho, Wo], row (u,v,c)
		}
		patches = graph.Reshape(patches, K*C, M)
		// Kernel [O, C, kh, kw] → [O, kh, kw, C] → [O, K·C] to match the patch rows.
		wm := w
		if K > 1 {
			wm = graph.TransposeAllAxes(w, 0, 2, 3, 1)
		}
		wm = graph.Reshape(wm, O, K*C)
		y := graph.DotGeneral(wm, []int{1}, nil, patches, []int{0}, nil) // [O, N·Ho·Wo]
		return graph.Reshape(y, O, N, ho, wo)
	}
	G, Cg, Og := groups, C/groups, O/groups
	for k, s := range slices {
		slices[k] = graph.Reshape(s, G, Cg, M)
	}
	patches := slices[0]
	if len(slices) > 1 {
		patches = graph.Concatenate(slices, 1) // [G, K·Cg, M], row (u,v,c) within the group
	}
	// Kernel [O, Cg, kh, kw] → [G, Og, Cg, K] → [G, Og, K, Cg] → [G, Og, K·Cg].
	wm := graph.Reshape(w, G, Og, Cg, K)
	if K > 1 && Cg > 1 {
		wm = graph.TransposeAllAxes(wm, 0, 1, 3, 2)
	}
	wm = graph.Reshape(wm, G, Og, K*Cg)
	y := graph.DotGeneral(wm, []int{2}, []int{0}, patches, []int{1}, []int{0}) // [G, Og, M]
	return graph.Reshape(y, O, N, ho, wo)
}

// convPatchesS1 is convPatches for stride 1 with a hand-written gradient
// with respect to x: the transposed convolution dx = conv(dy, w̃), with the
// same groups, where w̃[g·C/G + c, o', u, v] = w[g·O/G + o', c, kh−1−u, kw−1−v]
// (per group: in and out channels swapped, kernel flipped), itself computed by
// convPatches. Autodiff through the shifted slices would instead build kh·kw
// zero-padded copies of the input (Pad, the gradient of Slice) and sum them,
// which is the slowest part of the Go backend's backward pass.
//
// GoMLX gives custom gradients only to identities, so two are used: one on
// the output stores the arriving gradient dy, one on the input (created
// first, hence differentiated later) returns conv(dy, w̃). The input reaches
// the output differentiably only through a zero-weighted single element, so
// autodiff visits it; the gradient with respect to w flows through the
// matrix multiply as usual.
//
// route (ConvPatches, convShiftDot or convFlatPath) computes both
// convolutions.
func convPatchesS1(x, w *graph.Node, groups, kh, kw int, route ConvPath) *graph.Node {
	conv := func(a, k *graph.Node) *graph.Node {
		if route == convFlatPath {
			return convFlat(a, k, kh, kw)
		}
		return convPatchesWith(a, k, 1, groups, kh, kw, route == convShiftDot, true)
	}
	var dy *graph.Node
	xi := graph.IdentityWithCustomGradient(x, func(_, _ *graph.Node) *graph.Node {
		if dy == nil {
			panic("nn.Conv2D: gradient with respect to the input requested before the output's")
		}
		inputGradsBuilt++
		return conv(dy, transposedKernel(graph.StopGradient(w), groups))
	})
	y := conv(graph.StopGradient(xi), w)
	one := graph.Slice(xi, graph.AxisRange(0, 1), graph.AxisRange(0, 1), graph.AxisRange(0, 1), graph.AxisRange(0, 1))
	y = graph.Add(y, graph.MulScalar(one, 0))
	return graph.IdentityWithCustomGradient(y, func(_, v *graph.Node) *graph.Node {
		dy = v
		return v
	})
}

// inputGradsBuilt counts the input-gradient convolutions convPatchesS1 has
// added to graphs (tests check that a graph differentiating only the kernel
// builds none).
var inputGradsBuilt int

// transposedKernel returns w̃ [C, O/G, kh, kw] for w [O, C/G, kh, kw]:
// w̃[g·C/G + c, o', u, v] = w[g·O/G + o', c, kh−1−u, kw−1−v].
func transposedKernel(w *graph.Node, groups int) *graph.Node {
	d := w.Shape().Dimensions
	O, Cg, kh, kw := d[0], d[1], d[2], d[3]
	G, Og := groups, O/groups
	wt := graph.Reverse(w, 2, 3)
	if groups == 1 {
		return graph.TransposeAllAxes(wt, 1, 0, 2, 3)
	}
	wt = graph.Reshape(wt, G, Og, Cg, kh, kw)
	if Og > 1 && Cg > 1 {
		wt = graph.TransposeAllAxes(wt, 0, 2, 1, 3, 4)
	}
	return graph.Reshape(wt, G*Cg, Og, kh, kw)
}

// shiftDotPatches returns the patches of a 3×3 stride-1 convolution with
// padding 1, [9·C, N·H·W] with rows (u, v, c) as in convPatches, built
// without Slice: two matrix multiplies with constant 0/1 shift matrices,
//
//	xh[c,n,i,(v,j)]   = Σ_j' x[c,n,i,j']   · Sh[j', (v,j)],  Sh[j', (v,j)] = [j' = j+v−1]
//	xv[(u,i),c,n,v,j] = Σ_i' Sv[(u,i), i'] · xh[c,n,i',(v,j)], Sv[(u,i), i'] = [i' = i+u−1]
//
// (out-of-range indices match no j' or i': the zero padding), then one
// transpose to rows (u, v, c) and columns (n, i, j).
func shiftDotPatches(x *graph.Node) *graph.Node {
	g := x.Graph()
	d := x.Shape().Dimensions
	C, N, H, W := d[0], d[1], d[2], d[3]
	xh := graph.DotGeneral(x, []int{3}, nil, shiftMatrix(g, x.DType(), W, false), []int{0}, nil) // [C,N,H,3W]
	xv := graph.DotGeneral(shiftMatrix(g, x.DType(), H, true), []int{1}, nil, xh, []int{2}, nil) // [3H,C,N,3W]
	xv = graph.Reshape(xv, 3, H, C, N, 3, W)
	p := graph.TransposeAllAxes(xv, 0, 4, 2, 3, 1, 5) // [3(u), 3(v), C, N, H, W]
	return graph.Reshape(p, 9*C, N*H*W)
}

// shiftMatrix is the constant 0/1 matrix S[j', (v,j)] = [j' = j+v−1] of
// shape [n, 3n], or its transpose [3n, n] when transposed.
func shiftMatrix(g *graph.Graph, dt dtypes.DType, n int, transposed bool) *graph.Node {
	m := make([]float32, 3*n*n)
	for v := 0; v < 3; v++ {
		for j := 0; j < n; j++ {
			jp := j + v - 1
			if jp < 0 || jp >= n {
				continue
			}
			if transposed {
				m[(v*n+j)*n+jp] = 1
			} else {
				m[jp*3*n+v*n+j] = 1
			}
		}
	}
	var t *tensors.Tensor
	if transposed {
		t = tensors.FromFlatDataAndDimensions(m, 3*n, n)
	} else {
		t = tensors.FromFlatDataAndDimensions(m, n, 3*n)
	}
	return graph.ConvertDType(graph.ConstTensor(g, t), dt)
}

// depthwiseBanded computes a depthwise convolution (groups = C = O) without
// patches. Each kernel row u is a 1-D convolution along the image rows, i.e.
// a product with a banded matrix built from the kernel, done for every
// channel in one DotGeneral batched over channels; the kernel rows are then
// summed with vertically shifted slices:
//
//	B[c, j', (u,j)]   = w[c, 0, u, j' − s·j + p]   (0 outside the kernel)
//	t[c, n, i', u, j] = Σ_j' x[c, n, i', j'] · B[c, j', (u,j)]
//	y[c, n, i, j]     = Σ_u t̃[c, n, s·i + u − p, u, j]
//
// with p = (kw−1)/2 and t̃ zero outside the image rows.
func depthwiseBanded(x, w *graph.Node, stride, kh, kw int) *graph.Node {
	g := x.Graph()
	d := x.Shape().Dimensions
	C, N, H, W := d[0], d[1], d[2], d[3]
	ho, wo := ConvOutSize(H, kh, stride), ConvOutSize(W, kw, stride)
	ph, pw := (kh-1)/2, (kw-1)/2
	// S[v, j', j] = [j' = s·j + v − pw].
	m := make([]float32, kw*W*wo)
	for v := 0; v < kw; v++ {
		for j := 0; j < wo; j++ {
			if jp := stride*j + v - pw; jp >= 0 && jp < W {
				m[(v*W+jp)*wo+j] = 1
			}
		}
	}
	S := graph.ConvertDType(graph.ConstTensor(g, tensors.FromFlatDataAndDimensions(m, kw, W*wo)), x.DType())
	B := graph.DotGeneral(graph.Reshape(w, C*kh, kw), []int{1}, nil, S, []int{0}, nil) // [(c,u), (j',j)]
	B = graph.TransposeAllAxes(graph.Reshape(B, C, kh, W, wo), 0, 2, 1, 3)             // [c, j', u, j]
	B = graph.Reshape(B, C, W, kh*wo)
	t := graph.DotGeneral(graph.Reshape(x, C, N*H, W), []int{2}, []int{0}, B, []int{1}, []int{0}) // [c, (n,i'), (u,j)]
	t = graph.Reshape(t, C, N, H, kh, wo)
	if ph > 0 {
		z := graph.Zeros(g, shapes.Make(x.DType(), C, N, ph, kh, wo))
		t = graph.Concatenate([]*graph.Node{z, t, z}, 2)
	}
	var y *graph.Node
	for u := 0; u < kh; u++ {
		s := graph.Slice(t, graph.AxisRange(), graph.AxisRange(),
			graph.AxisRange(u, u+stride*(ho-1)+1).Stride(stride), graph.AxisElem(u), graph.AxisRange())
		if y == nil {
			y = s
		} else {
			y = graph.Add(y, s)
		}
	}
	return graph.Reshape(y, C, N, ho, wo)
}

// flatPatches returns the patches of a stride-1 kh×kw convolution of x
// [C, N, H, W] without Slice: the zero-padded input is flattened per (c, n)
// to a row of L = Hp·Wp values (Hp = H+kh−1, Wp = W+kw−1), and tap (u, v),
// at flat offset o = u·Wp + v, is that row shifted right by oMax − o with
// zeros on both sides — concatenations only, each a row-wise memory copy:
//
//	patches[(u,v,c), n, q] = xf[c, n, q − front − oMax + o]   (0 outside the row)
//
// where oMax = (kh−1)·Wp + kw−1 and front pads so that position q of output
// row i and column j is q = (i + rows0)·Wp + j with rows0 = ⌈(front+oMax)/Wp⌉.
// It returns the patches [K·C, N·R·Wp] (R rows of Wp positions per image) and
// rows0: the output y[o, n, i, j] = ext[o, n, rows0 + i, j] for i < H, j < W.
func flatPatches(x *graph.Node, kh, kw int) (patches *graph.Node, R, Wp, rows0 int) {
	g := x.Graph()
	d := x.Shape().Dimensions
	C, N, H, W := d[0], d[1], d[2], d[3]
	ph, pw := (kh-1)/2, (kw-1)/2
	Hp := H + 2*ph
	Wp = W + 2*pw
	L := Hp * Wp
	xf := graph.Reshape(zeroPad(x, ph, pw), C, N, L)
	oMax := (kh-1)*Wp + kw - 1
	// Valid output (i, j) reads xf[i·Wp + j + o]; in the shifted copy it sits at
	// q = i·Wp + j + front + oMax, which must be (i + rows0)·Wp + j.
	rows0 = (oMax + Wp - 1) / Wp
	front := rows0*Wp - oMax
	// The last valid q is (H−1+rows0)·Wp + W−1; every copy has length R·Wp ≥
	// front + oMax + L (the rightmost shift ends there).
	R = max(H+rows0, (front+oMax+L+Wp-1)/Wp)
	total := R * Wp
	dt := x.DType()
	var taps []*graph.Node
	for u := 0; u < kh; u++ {
		for v := 0; v < kw; v++ {
			o := u*Wp + v
			lead := front + oMax - o
			parts := []*graph.Node{}
			if lead > 0 {
				parts = append(parts, graph.Zeros(g, shapes.Make(dt, C, N, lead)))
			}
			parts = append(parts, xf)
			if tail := total - lead - L; tail > 0 {
				parts = append(parts, graph.Zeros(g, shapes.Make(dt, C, N, tail)))
			}
			taps = append(taps, graph.Concatenate(parts, 2))
		}
	}
	patches = graph.Concatenate(taps, 0) // [K·C, N, R·Wp]
	return graph.Reshape(patches, kh*kw*C, N*total), R, Wp, rows0
}

// convFlat is a dense stride-1 convolution on flatPatches: one matrix
// multiply on the extended grid, then one Slice of the output (instead of
// kh·kw slices of the input).
func convFlat(x, w *graph.Node, kh, kw int) *graph.Node {
	C, N, H, W := x.Shape().Dimensions[0], x.Shape().Dimensions[1], x.Shape().Dimensions[2], x.Shape().Dimensions[3]
	O := w.Shape().Dimensions[0]
	patches, R, Wp, rows0 := flatPatches(x, kh, kw)
	wm := graph.Reshape(graph.TransposeAllAxes(w, 0, 2, 3, 1), O, kh*kw*C)
	ext := graph.DotGeneral(wm, []int{1}, nil, patches, []int{0}, nil) // [O, N·R·Wp]
	ext = graph.Reshape(ext, O, N, R, Wp)
	return sliceFastGrad(ext, rows0, H, W)
}

// sliceFastGrad is ext[:, :, r0:r0+H, 0:W] whose gradient is built by
// Concatenate with zeros (row copies) instead of autodiff's Pad.
func sliceFastGrad(ext *graph.Node, r0, H, W int) *graph.Node {
	d := ext.Shape().Dimensions
	O, N, R, Wp := d[0], d[1], d[2], d[3]
	g := ext.Graph()
	var dy *graph.Node
	ei := graph.IdentityWithCustomGradient(ext, func(_, _ *graph.Node) *graph.Node {
		if dy == nil {
			panic("nn: sliceFastGrad: input gradient requested before the output's")
		}
		dt := dy.DType()
		v := dy
		if Wp > W {
			v = graph.Concatenate([]*graph.Node{v, graph.Zeros(g, shapes.Make(dt, O, N, H, Wp-W))}, 3)
		}
		parts := []*graph.Node{}
		if r0 > 0 {
			parts = append(parts, graph.Zeros(g, shapes.Make(dt, O, N, r0, Wp)))
		}
		parts = append(parts, v)
		if t := R - r0 - H; t > 0 {
			parts = append(parts, graph.Zeros(g, shapes.Make(dt, O, N, t, Wp)))
		}
		return graph.Concatenate(parts, 2)
	})
	y := graph.Slice(graph.StopGradient(ei), graph.AxisRange(), graph.AxisRange(), graph.AxisRange(r0, r0+H), graph.AxisRange(0, W))
	one := graph.Slice(ei, graph.AxisRange(0, 1), graph.AxisRange(0, 1), graph.AxisRange(0, 1), graph.AxisRange(0, 1))
	y = graph.Add(y, graph.MulScalar(one, 0))
	return graph.IdentityWithCustomGradient(y, func(_, v *graph.Node) *graph.Node {
		dy = v
		return v
	})
}
