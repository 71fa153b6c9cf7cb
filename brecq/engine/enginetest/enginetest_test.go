package enginetest_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine/enginetest"
)

func TestConfig(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"", "go"},
		{"go", "go"},
		{"xla:cpu", "xla:cpu"},
	} {
		t.Setenv("GOMLX_BACKEND", c.env)
		if got := enginetest.Config(); got != c.want {
			t.Errorf("GOMLX_BACKEND=%q: Config() = %q, want %q", c.env, got, c.want)
		}
	}
}

func TestBackendDefaultIsGoAndShared(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "")
	b := enginetest.Backend(t)
	if b.String() != "go" {
		t.Errorf("default test backend is %q (%s), want go", b.String(), b.Description())
	}
	if b2 := enginetest.Backend(t); b2 != b {
		t.Errorf("second call returned another backend")
	}
}

// fatalTB records Fatalf instead of stopping the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestBackendUnknownFails(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "no-such-backend")
	f := &fatalTB{TB: t}
	if b := enginetest.Backend(f); b != nil || !strings.Contains(f.msg, `"no-such-backend"`) {
		t.Errorf("Backend = %v, Fatalf message %q; want nil and a message naming the backend", b, f.msg)
	}
}

func TestRenamed(t *testing.T) {
	b := enginetest.Renamed(enginetest.Backend(t), "other")
	if b.Name() != "other" || b.String() != "other" {
		t.Errorf("Name, String = %q, %q; want other", b.Name(), b.String())
	}
	x := tensors.FromValue([]float32{1, 2, 3})
	y := graph.MustExecOnce(b, func(x *graph.Node) *graph.Node { return graph.MulScalar(x, 2) }, x)
	if got := y.Value().([]float32); !slices.Equal(got, []float32{2, 4, 6}) {
		t.Errorf("2·x on the renamed backend = %v", got)
	}
}
