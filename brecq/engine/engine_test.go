package engine_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/brecq-go/brecq/brecq/engine"
)

func TestConfigHonoursEnvVar(t *testing.T) {
	if engine.EnvVar != "GOMLX_BACKEND" {
		t.Errorf("EnvVar = %q, want GOMLX_BACKEND", engine.EnvVar)
	}
	for _, v := range []string{"go", "xla:cpu", "xla:cuda", "go:some-option"} {
		t.Setenv("GOMLX_BACKEND", v)
		config, reason := engine.Config()
		if config != v || reason != "from GOMLX_BACKEND" {
			t.Errorf("GOMLX_BACKEND=%s: Config() = %q, %q", v, config, reason)
		}
	}
}

// helperEnv marks the re-executed test binary (see runHelper).
const helperEnv = "BRECQ_ENGINE_TEST_HELPER"

// TestHelperProcess is not a test: runHelper runs the test binary again with
// only this function and a chosen environment. go-xla reads
// PJRT_PLUGIN_LIBRARY_PATH once, when the process starts, so setting it with
// t.Setenv inside this process would have no effect.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper for TestConfig* (runs in a child process)")
	}
	config, reason := engine.Config()
	var sb strings.Builder
	sb.WriteString("CONFIG\t" + config + "\t" + reason + "\n")
	if os.Getenv(helperEnv+"_BACKEND") == "1" {
		if _, err := engine.Backend(); err != nil {
			sb.WriteString("BACKEND-ERROR\t" + err.Error() + "\n")
		}
		var isGo string
		if engine.IsGo() {
			isGo = "true"
		}
		sb.WriteString("NAME\t" + engine.Name() + "\t" + isGo + "\n")
		var ann strings.Builder
		if err := engine.Announce(&ann); err != nil {
			sb.WriteString("ANNOUNCE-ERROR\t" + err.Error() + "\n")
		}
		sb.WriteString("ANNOUNCE\t" + strings.TrimSpace(ann.String()) + "\n")
	}
	os.Stdout.WriteString(sb.String())
}

// runHelper runs TestHelperProcess in a child process whose environment is
// this one without GOMLX_BACKEND and PJRT_PLUGIN_LIBRARY_PATH, plus env, and
// returns the lines it printed, split on tabs, by their first field.
func runHelper(t *testing.T, env ...string) map[string][]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMLX_BACKEND=") && !strings.HasPrefix(kv, "PJRT_PLUGIN_LIBRARY_PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"=1")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	lines := map[string][]string{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(l, "\t")
		if len(f) > 1 {
			lines[f[0]] = f[1:]
		}
	}
	if lines["CONFIG"] == nil {
		t.Fatalf("helper printed no CONFIG line:\n%s", out)
	}
	return lines
}

// TestConfigWithoutPlugins: with PJRT_PLUGIN_LIBRARY_PATH set, go-xla v0.4.1
// searches only the folders it lists (dynamiclib_base.go: the default paths,
// LD_LIBRARY_PATH and /etc/ld.so.conf are used only when the variable is
// unset), so an empty folder means no plugin, on any machine.
func TestConfigWithoutPlugins(t *testing.T) {
	empty := t.TempDir()
	l := runHelper(t, "PJRT_PLUGIN_LIBRARY_PATH="+empty, helperEnv+"_BACKEND=1")
	if got := l["CONFIG"]; !slices.Equal(got, []string{"go", "no PJRT plugin installed"}) {
		t.Errorf("Config() = %q, want go, no PJRT plugin installed", got)
	}
	if l["BACKEND-ERROR"] != nil || l["ANNOUNCE-ERROR"] != nil {
		t.Errorf("Backend: %q, Announce: %q", l["BACKEND-ERROR"], l["ANNOUNCE-ERROR"])
	}
	if got := l["NAME"]; !slices.Equal(got, []string{"go (no PJRT plugin installed)", "true"}) {
		t.Errorf("Name(), IsGo() = %q", got)
	}
	want := "backend: go (no PJRT plugin installed); built with GOEXPERIMENT=" + engine.BuildExperiments()
	if got := l["ANNOUNCE"]; !slices.Equal(got, []string{want}) {
		t.Errorf("Announce printed %q, want %q", got, want)
	}
	// A GOMLX_BACKEND that is set but empty counts as unset.
	l = runHelper(t, "PJRT_PLUGIN_LIBRARY_PATH="+empty, "GOMLX_BACKEND=")
	if got := l["CONFIG"]; !slices.Equal(got, []string{"go", "no PJRT plugin installed"}) {
		t.Errorf("GOMLX_BACKEND empty: Config() = %q", got)
	}
	// GOMLX_BACKEND still wins over the plugin search.
	l = runHelper(t, "PJRT_PLUGIN_LIBRARY_PATH="+empty, "GOMLX_BACKEND=go")
	if got := l["CONFIG"]; !slices.Equal(got, []string{"go", "from GOMLX_BACKEND"}) {
		t.Errorf("GOMLX_BACKEND=go: Config() = %q", got)
	}
}

// TestConfigUnloadablePlugin: a file named like a plugin that is not a
// shared library must not crash the backend choice (go-xla v0.4.1 panics on
// it; engine recovers and falls back to the Go backend).
func TestConfigUnloadablePlugin(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pjrt_c_api_broken_plugin.so"), []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := runHelper(t, "PJRT_PLUGIN_LIBRARY_PATH="+dir, helperEnv+"_BACKEND=1")
	if got := l["CONFIG"]; len(got) != 2 || got[0] != "go" || !strings.Contains(got[1], "plugin") {
		t.Errorf("Config() = %q, want go and a reason about the plugin", got)
	}
	if l["BACKEND-ERROR"] != nil {
		t.Errorf("Backend: %q", l["BACKEND-ERROR"])
	}
}

func TestBuildExperiments(t *testing.T) {
	got := engine.BuildExperiments()
	has := slices.Contains(strings.Split(got, ","), "simd")
	if has != builtWithSIMD {
		t.Errorf("BuildExperiments() = %q, but the goexperiment.simd build tag is %v", got, builtWithSIMD)
	}
	if !builtWithSIMD {
		t.Logf("test binary built without GOEXPERIMENT=simd; BuildExperiments() = %q", got)
	}
}
