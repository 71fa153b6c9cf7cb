package models_test

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"

	"github.com/brecq-go/brecq/brecq/models"
)

// workOps records, for every layer the forward pass applies, the working set
// ImageWorkBytes documents (peak: input, patches twice, output) and what
// BackwardWorkBytes documents a backward pass keeps (sum: input, patches
// once, output), from the shapes GoMLX gives the layer's input and output
// nodes (batch 1).
type workOps struct {
	models.EvalOps
	peak, sum int64
}

func (o *workOps) Layer(l *models.Layer, x *graph.Node) *graph.Node {
	y := o.EvalOps.Layer(l, x)
	in, out := int64(x.Shape().Size()), int64(y.Shape().Size())
	var patches int64
	if l.Kind == models.Conv {
		patches = 4 * int64(l.Kernel*l.Kernel) * int64(x.Shape().Dimensions[0]) * out / int64(l.Out)
	}
	o.peak = max(o.peak, 4*(in+out)+2*patches)
	o.sum += 4*(in+out) + patches
	return y
}

// TestImageWorkBytes: the host-side shape walk of ImageWorkBytes agrees with
// the shapes of the built graph for every architecture (ResNet's max-pool,
// strides, shortcuts, inverted residuals, grouped convolutions), and gives
// the hand-computed value for ResNet-20 at 1×28×28: its 16-channel 3×3
// layers at 28×28, 4·784·(16 + 2·9·16 + 16) = 1 003 520 bytes.
func TestImageWorkBytes(t *testing.T) {
	r20, err := models.CIFARResNet(20, 1, 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := r20.ImageWorkBytes(); got != 1003520 {
		t.Errorf("ResNet-20 at 1×28×28: %d bytes, want 1 003 520", got)
	}
	b := goBackend(t)
	for _, arch := range models.Archs() {
		for _, size := range []int{28, 64, 97} {
			t.Run(fmt.Sprintf("%s-%d", arch, size), func(t *testing.T) {
				net, err := models.New(arch, 3, size, size, 10)
				if err != nil {
					t.Skip(err)
				}
				g := graph.NewGraph(b, "shapes")
				gp := models.GraphParams{}
				for name, shape := range net.ParamShapes() {
					gp[name] = graph.Parameter(g, name, shapes.Make(dtypes.Float32, shape...))
				}
				ops := &workOps{EvalOps: models.EvalOps{P: gp}}
				x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, 1, 3, size, size))
				net.Forward(ops, x)
				if got := net.ImageWorkBytes(); got != ops.peak {
					t.Errorf("ImageWorkBytes %d, the graph's shapes give %d", got, ops.peak)
				}
			})
		}
	}
}

// TestBackwardWorkBytes: the host-side sum agrees with the built graph's
// shapes for every architecture and several starting blocks, and gives the
// hand-computed value for ResNet-20 at 1×28×28 from its first block:
//
//	stem 4·784·(1 + 9 + 16)                                    =    81 536
//	stage 1, 6 convs of 4·784·(16 + 144 + 16)                  = 3 311 616
//	stage 2, 32→32 convs 4·196·(32 + 288 + 32) = 275 968 each:
//	  5 of them, the strided 16→32 conv 4·(12 544 + 28 224 + 6 272)
//	  and its 1×1 shortcut 4·(12 544 + 3 136 + 6 272)           = 1 655 808
//	stage 3 likewise at 7×7 (137 984 each; 94 080 and 43 904)  =   827 904
//	fc 4·(64 + 10)                                             =       296
//
// 5 877 160 bytes in all.
func TestBackwardWorkBytes(t *testing.T) {
	r20, err := models.CIFARResNet(20, 1, 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := r20.BackwardWorkBytes(0, len(r20.Blocks)); got != 5877160 {
		t.Errorf("ResNet-20 at 1×28×28: %d bytes, want 5 877 160", got)
	}
	if got := r20.BackwardWorkBytes(3, 3); got != 0 {
		t.Errorf("empty range: %d bytes", got)
	}
	b := goBackend(t)
	for _, arch := range models.Archs() {
		for _, size := range []int{28, 64} {
			net, err := models.New(arch, 3, size, size, 10)
			if err != nil {
				continue
			}
			nb := len(net.Blocks)
			for _, from := range []int{0, 1, nb / 2, nb - 1} {
				t.Run(fmt.Sprintf("%s-%d-from%d", arch, size, from), func(t *testing.T) {
					g := graph.NewGraph(b, "shapes")
					gp := models.GraphParams{}
					for name, shape := range net.ParamShapes() {
						gp[name] = graph.Parameter(g, name, shapes.Make(dtypes.Float32, shape...))
					}
					x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, 1, 3, size, size))
					h := net.ForwardRange(&models.EvalOps{P: gp}, models.ToCNHW(x), 0, from)
					ops := &workOps{EvalOps: models.EvalOps{P: gp}}
					net.ForwardRange(ops, h, from, nb)
					if got := net.BackwardWorkBytes(from, nb); got != ops.sum {
						t.Errorf("BackwardWorkBytes(%d, %d) = %d, the graph's shapes give %d", from, nb, got, ops.sum)
					}
				})
			}
		}
	}
}
