// Package engine chooses the compute backend for every brecq command, test and
// notebook, in one place.
//
// The rule: GOMLX_BACKEND when it is set (e.g. "go", "xla:cpu", "xla:cuda");
// otherwise XLA when a PJRT plugin is installed on this machine (searched in
// PJRT_PLUGIN_LIBRARY_PATH, ~/.local/lib/go-xla, /usr/local/lib/go-xla and the
// system library paths), else GoMLX's pure-Go backend. XLA's automatic plugin
// download is switched off: on a machine without a network it could only fail.
//
// The pure-Go backend is fast only when built with GOEXPERIMENT=simd (its
// matrix multiply then runs ~15x faster); every build of this module should
// set it.
package engine

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // registers "go"
	"github.com/gomlx/go-xla/compute/xla"  // registers "xla"
)

// EnvVar is the environment variable that overrides the backend choice.
const EnvVar = compute.ConfigEnvVar

var (
	once       sync.Once
	theBackend compute.Backend
	theName    string
	theConfig  string
	theErr     error
)

// Config returns the backend configuration string that Backend will use and
// why: the GOMLX_BACKEND value, "xla:<plugin>" when a PJRT plugin is installed,
// or "go".
func Config() (config, reason string) {
	if v, ok := os.LookupEnv(EnvVar); ok && v != "" {
		return v, "from " + EnvVar
	}
	plugins, err := availablePlugins()
	if err != nil {
		return "go", err.Error()
	}
	if len(plugins) > 0 {
		return "xla:" + plugins[0], "PJRT plugin found"
	}
	return "go", "no PJRT plugin installed"
}

// availablePlugins is xla.GetAvailablePlugins, with the panic go-xla v0.4.1
// raises when a file in the search path is named like a plugin but cannot be
// loaded (a nil handle is closed) turned into an error.
func availablePlugins() (plugins []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PJRT plugin search failed (%v): an unloadable pjrt_*plugin* file is in the search path", r)
		}
	}()
	xla.EnableAutoInstall(false)
	return xla.GetAvailablePlugins(), nil
}

// Backend returns the process-wide backend, created on first use.
func Backend() (compute.Backend, error) {
	once.Do(func() {
		config, reason := Config()
		b, err := New(config)
		if err != nil {
			theErr = fmt.Errorf("engine: backend %q (%s) failed: %w", config, reason, err)
			return
		}
		theBackend = b
		theConfig = config
		theName = fmt.Sprintf("%s (%s)", config, reason)
	})
	return theBackend, theErr
}

// New creates a backend from a configuration string ("go", "xla:cpu", …) with
// XLA's automatic plugin download switched off; a panic while creating it is
// returned as an error. Backend uses it for the process-wide backend; tests
// use it through enginetest.
func New(config string) (b compute.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%v", r)
		}
	}()
	xla.EnableAutoInstall(false)
	return compute.NewWithConfig(config)
}

// MustBackend is Backend that panics on error (for tests and notebooks).
func MustBackend() compute.Backend {
	b, err := Backend()
	if err != nil {
		panic(err)
	}
	return b
}

// Name describes the chosen backend, e.g. "go (no PJRT plugin installed)".
// It is empty before Backend succeeds.
func Name() string { return theName }

// IsGo reports whether the chosen backend is GoMLX's pure-Go backend, where
// convolutions take the patches + matrix-multiply path.
func IsGo() bool {
	_, err := Backend()
	return err == nil && (theConfig == "go" || strings.HasPrefix(theConfig, "go:"))
}

// BuildExperiments returns the GOEXPERIMENT setting this binary was built
// with ("simd" makes the Go backend's matrix multiply fast), or "(none)".
func BuildExperiments() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOEXPERIMENT" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "(none)"
}

// Announce prints the chosen backend on w, once per command.
func Announce(w io.Writer) error {
	if _, err := Backend(); err != nil {
		return err
	}
	fmt.Fprintf(w, "backend: %s; built with GOEXPERIMENT=%s\n", theName, BuildExperiments())
	return nil
}
