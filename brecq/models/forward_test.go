package models_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine/enginetest"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/nn"
)

// ---- Reference CIFAR ResNet in float64, NCHW, with plain loops ----

// act is an activation tensor [n, c, h, w], row-major.
type act struct {
	n, c, h, w int
	v          []float64
}

func (a act) at(n, c, y, x int) float64 { return a.v[((n*a.c+c)*a.h+y)*a.w+x] }

// refParams holds float64 copies of the parameters and their shapes.
type refParams struct {
	v     map[string][]float64
	shape map[string][]int
}

func newRefParams(p models.Params) refParams {
	r := refParams{v: map[string][]float64{}, shape: map[string][]int{}}
	for name, t := range p {
		f := tensors.MustCopyFlatData[float32](t)
		d := make([]float64, len(f))
		for i, x := range f {
			d[i] = float64(x)
		}
		r.v[name], r.shape[name] = d, t.Shape().Dimensions
	}
	return r
}

// refConv is PyTorch's Conv2d(bias=False, padding=(k−1)/2, stride) with weight [O, I, k, k].
func refConv(x act, w []float64, ws []int, stride int) act {
	O, I, k := ws[0], ws[1], ws[2]
	if I != x.c {
		panic(fmt.Sprintf("refConv: %d input channels, weight %v", x.c, ws))
	}
	pad := (k - 1) / 2
	ho, wo := (x.h+2*pad-k)/stride+1, (x.w+2*pad-k)/stride+1
	y := act{x.n, O, ho, wo, make([]float64, x.n*O*ho*wo)}
	for n := 0; n < x.n; n++ {
		for o := 0; o < O; o++ {
			for i := 0; i < ho; i++ {
				for j := 0; j < wo; j++ {
					s := 0.0
					for c := 0; c < I; c++ {
						for u := 0; u < k; u++ {
							yy := i*stride + u - pad
							if yy < 0 || yy >= x.h {
								continue
							}
							for v := 0; v < k; v++ {
								xx := j*stride + v - pad
								if xx < 0 || xx >= x.w {
									continue
								}
								s += w[((o*I+c)*k+u)*k+v] * x.at(n, c, yy, xx)
							}
						}
					}
					y.v[((n*O+o)*ho+i)*wo+j] = s
				}
			}
		}
	}
	return y
}

// refBN is BatchNorm2d in eval mode: γ(x − μ)/√(σ² + 1e-5) + β with running statistics.
func refBN(x act, p refParams, bn string) act {
	y := act{x.n, x.c, x.h, x.w, make([]float64, len(x.v))}
	for n := 0; n < x.n; n++ {
		for c := 0; c < x.c; c++ {
			g, b := p.v[bn+".weight"][c], p.v[bn+".bias"][c]
			m, s2 := p.v[bn+".running_mean"][c], p.v[bn+".running_var"][c]
			for i := 0; i < x.h*x.w; i++ {
				k := (n*x.c+c)*x.h*x.w + i
				y.v[k] = g*(x.v[k]-m)/math.Sqrt(s2+1e-5) + b
			}
		}
	}
	return y
}

func refReLU(x act) act {
	y := act{x.n, x.c, x.h, x.w, make([]float64, len(x.v))}
	for i, v := range x.v {
		y.v[i] = math.Max(v, 0)
	}
	return y
}

func refAdd(a, b act) act {
	y := act{a.n, a.c, a.h, a.w, make([]float64, len(a.v))}
	for i := range a.v {
		y.v[i] = a.v[i] + b.v[i]
	}
	return y
}

// refResNet runs the CIFAR ResNet of depth 6n+2 in inference mode and
// returns the logits [N][classes] and the stem output. The topology is
// written out here: stride 2 and a 1x1-conv+BN shortcut at the first block of
// stages 2 and 3.
func refResNet(depth int, p refParams, x act) ([][]float64, act) {
	conv := func(h act, name string, stride int) act {
		return refConv(h, p.v[name+".weight"], p.shape[name+".weight"], stride)
	}
	h := refReLU(refBN(conv(x, "conv1", 1), p, "bn1"))
	stem := h
	for s := 1; s <= 3; s++ {
		for j := 0; j < (depth-2)/6; j++ {
			pre := fmt.Sprintf("layer%d.%d", s, j)
			stride := 1
			if s > 1 && j == 0 {
				stride = 2
			}
			y := refReLU(refBN(conv(h, pre+".conv1", stride), p, pre+".bn1"))
			y = refBN(conv(y, pre+".conv2", 1), p, pre+".bn2")
			sc := h
			if stride == 2 {
				sc = refBN(conv(h, pre+".downsample.0", stride), p, pre+".downsample.1")
			}
			h = refReLU(refAdd(y, sc))
		}
	}
	fw, fb := p.v["fc.weight"], p.v["fc.bias"]
	classes := len(fb)
	logits := make([][]float64, h.n)
	for n := 0; n < h.n; n++ {
		pooled := make([]float64, h.c)
		for c := 0; c < h.c; c++ {
			for i := 0; i < h.h*h.w; i++ {
				pooled[c] += h.v[(n*h.c+c)*h.h*h.w+i]
			}
			pooled[c] /= float64(h.h * h.w)
		}
		logits[n] = make([]float64, classes)
		for o := 0; o < classes; o++ {
			s := fb[o]
			for c := 0; c < h.c; c++ {
				s += fw[o*h.c+c] * pooled[c]
			}
			logits[n][o] = s
		}
	}
	return logits, stem
}

// randomParams gives every parameter of net random values with non-trivial
// BatchNorm statistics; convolution weights have std √(2/fan_in) so that
// activations stay of order one.
func randomParams(net *models.Net, seed uint64) models.Params {
	r := rand.New(rand.NewPCG(seed, 17))
	p := models.Params{}
	shapes := net.ParamShapes()
	for _, name := range net.ParamNames() { // sorted: the same values on every run
		s := shapes[name]
		v := make([]float32, numel(s))
		for i := range v {
			switch {
			case strings.HasSuffix(name, "running_var"):
				v[i] = float32(0.3 + r.Float64())
			case strings.HasSuffix(name, "running_mean"), strings.HasSuffix(name, "bias"):
				v[i] = float32(0.3 * r.NormFloat64())
			case len(s) == 1: // BN γ
				v[i] = float32(0.5 + r.Float64())
			case len(s) == 4:
				v[i] = float32(r.NormFloat64() * math.Sqrt(2/float64(s[1]*s[2]*s[3])))
			default: // fc weight
				v[i] = float32(0.5 * r.NormFloat64())
			}
		}
		p[name] = tensors.FromFlatDataAndDimensions(v, s...)
	}
	return p
}

func goBackend(t testing.TB) compute.Backend {
	return enginetest.Backend(t)
}

// evalForward runs net.Forward with EvalOps and returns the logits and the
// stem block's output (via ForwardRange), both as float32 slices.
func evalForward(t *testing.T, b compute.Backend, net *models.Net, p models.Params, x *tensors.Tensor) (logits, stem []float32) {
	t.Helper()
	names := net.ParamNames()
	exec, err := graph.NewExec(b, func(in []*graph.Node) []*graph.Node {
		gp := models.GraphParams{}
		for i, n := range names {
			gp[n] = in[i]
		}
		xin := in[len(names)]
		ops := models.EvalOps{P: gp}
		return []*graph.Node{net.Forward(ops, xin), net.ForwardRange(ops, models.ToCNHW(xin), 0, 1)}
	})
	if err != nil {
		t.Fatal(err)
	}
	args := []any{}
	for _, n := range names {
		args = append(args, p[n])
	}
	out, err := exec.Call(append(args, x)...)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
}

// convPathBackend is the test backend under a name that makes nn.ConvAuto
// (which the models use) take the given path: "go" for the patches path,
// any other name for the native convolution.
func convPathBackend(t *testing.T, path nn.ConvPath) compute.Backend {
	name := "go"
	if path == nn.ConvNative {
		name = "native-conv"
	}
	b := enginetest.Renamed(goBackend(t), name)
	if got := nn.AutoPath(b); got != path {
		t.Fatalf("nn.AutoPath(backend %q) = %d, want %d", name, got, path)
	}
	return b
}

func TestEvalForwardMatchesReference(t *testing.T) {
	for _, c := range []struct {
		inC, h, w, n, classes int
		path                  nn.ConvPath
	}{
		{2, 7, 7, 3, 5, nn.ConvPatches}, // odd sizes: stride-2 outputs 4, 2
		{1, 8, 6, 2, 4, nn.ConvPatches}, // one input channel (reshape path of ToCNHW), non-square
		{2, 7, 7, 3, 5, nn.ConvNative},
	} {
		t.Run(fmt.Sprintf("in%d_%dx%d_path%d", c.inC, c.h, c.w, c.path), func(t *testing.T) {
			net, err := models.CIFARResNet(8, 1, c.inC, c.h, c.w, c.classes)
			if err != nil {
				t.Fatal(err)
			}
			p := randomParams(net, uint64(c.inC*100+c.h))
			r := rand.New(rand.NewPCG(7, uint64(c.h)))
			xv := make([]float32, c.n*c.inC*c.h*c.w)
			xd := make([]float64, len(xv))
			for i := range xv {
				xv[i] = float32(r.NormFloat64())
				xd[i] = float64(xv[i])
			}
			logits, stem := evalForward(t, convPathBackend(t, c.path), net, p, tensors.FromFlatDataAndDimensions(xv, c.n, c.inC, c.h, c.w))
			want, wantStem := refResNet(8, newRefParams(p), act{c.n, c.inC, c.h, c.w, xd})
			if len(logits) != c.n*c.classes {
				t.Fatalf("%d logits, want %d", len(logits), c.n*c.classes)
			}
			scale := 0.0
			for _, row := range want {
				for _, v := range row {
					scale = math.Max(scale, math.Abs(v))
				}
			}
			worst := 0.0
			for n, row := range want {
				for o, v := range row {
					worst = math.Max(worst, math.Abs(float64(logits[n*c.classes+o])-v)/scale)
				}
			}
			if worst > 1e-4 || scale < 0.1 {
				t.Errorf("logits: max relative error %.3g (scale %.3g)", worst, scale)
			}
			// The stem output is [C, N, H, W] in the graph; the reference is NCHW.
			s := wantStem
			worstStem, scaleStem := 0.0, 0.0
			for n := 0; n < s.n; n++ {
				for ch := 0; ch < s.c; ch++ {
					for i := 0; i < s.h*s.w; i++ {
						ref := s.v[(n*s.c+ch)*s.h*s.w+i]
						got := float64(stem[(ch*s.n+n)*s.h*s.w+i])
						scaleStem = math.Max(scaleStem, math.Abs(ref))
						worstStem = math.Max(worstStem, math.Abs(got-ref))
					}
				}
			}
			if len(stem) != len(s.v) || worstStem > 1e-4*scaleStem {
				t.Errorf("stem: max error %.3g (scale %.3g, %d values, want %d)", worstStem, scaleStem, len(stem), len(s.v))
			}
			t.Logf("max relative logit error %.2g, logit scale %.2f", worst, scale)
		})
	}
}

// TestReferenceConv checks the reference convolution itself on a case
// computed by hand, so that agreement above is not agreement between two
// equally wrong convolutions.
func TestReferenceConv(t *testing.T) {
	// 1x1x3x3 input 1..9, 3x3 kernel of ones, padding 1, stride 2: outputs at
	// (0,0), (0,2), (2,0), (2,2) are the sums of the clipped 2x2 neighbourhoods.
	x := act{1, 1, 3, 3, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}}
	w := []float64{1, 1, 1, 1, 1, 1, 1, 1, 1}
	y := refConv(x, w, []int{1, 1, 3, 3}, 2)
	want := []float64{1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9}
	if y.h != 2 || y.w != 2 || fmt.Sprint(y.v) != fmt.Sprint(want) {
		t.Errorf("got %dx%d %v, want 2x2 %v", y.h, y.w, y.v, want)
	}
	// Kernel with a single 1 at (0,2) (top-right), stride 1: y[i,j] = x[i−1, j+1].
	w = []float64{0, 0, 1, 0, 0, 0, 0, 0, 0}
	y = refConv(x, w, []int{1, 1, 3, 3}, 1)
	want = []float64{0, 0, 0, 2, 3, 0, 5, 6, 0}
	if fmt.Sprint(y.v) != fmt.Sprint(want) {
		t.Errorf("shifted: got %v, want %v", y.v, want)
	}
}
