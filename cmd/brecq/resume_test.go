package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brecq-go/brecq/datasets"
)

// TestKillAndResumeIsBitIdentical kills a quantize run (SIGKILL) after it
// has saved some finished units, resumes it, and checks the export is
// byte-for-byte the export of an uninterrupted run; a resume with other
// options is refused, naming the option.
func TestKillAndResumeIsBitIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("kill-and-resume run skipped in -short mode")
	}
	dir := t.TempDir()
	base := []string{"quantize", "--depth", "8", "--model", ckpt, "--wbits", "2", "--abits", "4",
		"--iters", "60", "--act-iters", "30", "--calib", "16", "--batch", "8", "--quiet"}
	full := append(append([]string{}, base...), "--out", "a.safetensors")
	expect(t, run(t, dir, full...), 0, full)
	if _, err := os.Stat(filepath.Join(dir, "a.state")); !os.IsNotExist(err) {
		t.Errorf("the state folder of a finished run is left behind (%v)", err)
	}

	args := append(append([]string{}, base...), "--out", "b.safetensors", "--state", "b-state")
	cmd := exec.Command(brecqBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), datasets.EnvDataDir+"="+dataDir, "GOMLX_BACKEND=go")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "b-state", stateFile)
	// Wait for the second saved state (two finished units), then kill.
	var first time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(state); err == nil {
			if first.IsZero() {
				first = st.ModTime()
			} else if st.ModTime() != first {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if first.IsZero() {
		t.Fatal("the run saved no state before the deadline")
	}
	if _, err := os.Stat(filepath.Join(dir, "b.safetensors")); !os.IsNotExist(err) {
		t.Fatalf("a killed run left its output (%v)", err)
	}

	other := append(append([]string{}, base...), "--out", "b.safetensors", "--resume", "b-state")
	other[6] = "3" // --wbits 3
	expect(t, run(t, dir, other...), 1, other, "options.WBits")

	resume := append(append([]string{}, base...), "--out", "b.safetensors", "--resume", "b-state")
	r := run(t, dir, resume...)
	expect(t, r, 0, resume)
	if !strings.Contains(r.stdout, "resuming from b-state") {
		t.Errorf("the resumed run does not say it resumes:\n%s", r.stdout)
	}
	a, err := fileSHA256(filepath.Join(dir, "a.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := fileSHA256(filepath.Join(dir, "b.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("resumed export sha256 %s, uninterrupted %s", b, a)
	}
}

// TestInterruptPrintsResume: SIGINT during a run stops it within 2 s with
// exit code 130, prints the command that resumes it, and writes no output.
func TestInterruptPrintsResume(t *testing.T) {
	if testing.Short() {
		t.Skip("interrupt run skipped in -short mode")
	}
	dir := t.TempDir()
	args := []string{"quantize", "--depth", "8", "--model", ckpt, "--wbits", "2", "--abits", "4",
		"--iters", "400", "--act-iters", "30", "--calib", "16", "--batch", "8", "--quiet", "--out", "c.safetensors"}
	cmd := exec.Command(brecqBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), datasets.EnvDataDir+"="+dataDir, "GOMLX_BACKEND=go")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "c.state", stateFile)
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(state); err == nil {
			break
		}
	}
	t0 := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("stopped %v after SIGINT, want ≤ 2 s", d)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("exit after SIGINT: %v, want code 130", err)
	}
	if !strings.Contains(stderr.String(), "--resume c.state") {
		t.Errorf("no resume command printed:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "c.safetensors")); !os.IsNotExist(err) {
		t.Errorf("an interrupted run left its output (%v)", err)
	}
}
