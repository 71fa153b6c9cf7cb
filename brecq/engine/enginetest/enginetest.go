// Package enginetest gives every brecq test the backend it runs on, in one
// place: the backend named by GOMLX_BACKEND when it is set (e.g. "go",
// "xla:cpu"), else GoMLX's pure-Go backend ("go"). Unlike engine.Backend it
// never searches for a PJRT plugin, so a plain `go test ./...` runs on the Go
// backend on every machine, and `GOMLX_BACKEND=xla:cpu go test ./...` runs the
// same suite on XLA where a plugin is installed.
package enginetest

import (
	"os"
	"sync"
	"testing"

	"github.com/gomlx/compute"

	"github.com/brecq-go/brecq/brecq/engine"
)

// Default is the backend configuration tests use when GOMLX_BACKEND is unset
// or empty.
const Default = "go"

// Config returns the backend configuration the tests use: GOMLX_BACKEND when
// set and not empty, else Default.
func Config() string {
	if v := os.Getenv(engine.EnvVar); v != "" {
		return v
	}
	return Default
}

var (
	mu       sync.Mutex
	backends = map[string]compute.Backend{}
)

// Backend returns the test backend for Config(), created once per process and
// shared by all tests; it fails t when the backend cannot be created.
func Backend(t testing.TB) compute.Backend {
	t.Helper()
	config := Config()
	mu.Lock()
	defer mu.Unlock()
	if b, ok := backends[config]; ok {
		return b
	}
	b, err := engine.New(config)
	if err != nil {
		t.Fatalf("enginetest: backend %q (from %s, default %q): %v", config, engine.EnvVar, Default, err)
		return nil
	}
	backends[config] = b
	return b
}

// Renamed returns b under another name: every operation is b's, but String
// and Name report name. Code that chooses its path from the backend's name
// (nn.Conv2D with nn.ConvAuto: patches on "go", native elsewhere) then takes
// the path it would take on that backend, while computing on b — so the
// non-Go path is tested on a machine that has only the Go backend.
func Renamed(b compute.Backend, name string) compute.Backend {
	return renamed{Backend: b, name: name}
}

type renamed struct {
	compute.Backend
	name string
}

func (r renamed) Name() string   { return r.name }
func (r renamed) String() string { return r.name }
