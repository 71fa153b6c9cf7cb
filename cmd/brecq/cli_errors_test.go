package main

import (
	"bytes"
	"compress/gzip"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/brecq-go/brecq/brecq/safetensors"
	"github.com/brecq-go/brecq/datasets"
)

// badInputFixtures writes, into dir, the files the bad-input cases use:
// a copy of the checkpoint and a link to it, a half-precision checkpoint,
// checkpoints holding NaN / +Inf, a data set with an empty test split, one
// with a damaged gzip test file, and files that are not run records. It
// returns the data folders.
func badInputFixtures(t *testing.T, dir string) (emptyTest, badGzip string) {
	t.Helper()
	good, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "m.safetensors"), good, 0o644))
	must(os.Symlink("m.safetensors", filepath.Join(dir, "link.safetensors")))
	must(os.Mkdir(filepath.Join(dir, "adir"), 0o755))

	ts, meta, err := safetensors.ReadFile(ckpt)
	must(err)
	rewrite := func(name string, change func(*safetensors.Tensor) *safetensors.Tensor) {
		var out []*safetensors.Tensor
		for _, n := range slices.Sorted(maps.Keys(ts)) {
			c := *ts[n]
			c.F32 = slices.Clone(c.F32)
			out = append(out, change(&c))
		}
		must(safetensors.WriteFile(filepath.Join(dir, name), out, meta))
	}
	rewrite("f16.safetensors", func(c *safetensors.Tensor) *safetensors.Tensor {
		if c.DType != safetensors.F32 {
			return c
		}
		return &safetensors.Tensor{Name: c.Name, DType: safetensors.F16, Shape: c.Shape, Raw: make([]byte, 2*len(c.F32))}
	})
	for name, v := range map[string]float32{"nan.safetensors": float32(math.NaN()), "inf.safetensors": float32(math.Inf(1))} {
		rewrite(name, func(c *safetensors.Tensor) *safetensors.Tensor {
			if c.Name == "layer1.0.conv1.weight" {
				c.F32[5] = v
			}
			return c
		})
	}

	emptyTest, err = writeFakeDataN(filepath.Join(dir, "data-empty-test"), [4]int{48, 48, 0, 0})
	must(err)
	badGzip, err = writeFakeData(filepath.Join(dir, "data-bad-gzip"))
	must(err)
	testImages := filepath.Join(badGzip, datasets.FileNames[2])
	raw, err := os.ReadFile(testImages)
	must(err)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(raw)
	must(w.Close())
	damaged := gz.Bytes()
	damaged[len(damaged)/2] ^= 0x55
	must(os.WriteFile(testImages, damaged, 0o644))

	must(os.WriteFile(filepath.Join(dir, "other.json"), []byte(`{"hello": 1}`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "corrupt.json"), []byte(`{"options": {"wbits": 4`), 0o644))
	return emptyTest, badGzip
}

// TestBadInputs is the bad-input matrix: each case is a command line, the
// exit status it must give, substrings its stderr must hold, and whether
// it must stop before any work (nothing on stdout: the backend line is the
// first thing a run prints) and leave no output file.
func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	emptyTest, badGzip := badInputFixtures(t, dir)
	record, err := filepath.Abs("../../results/w4a4-block.json")
	if err != nil {
		t.Fatal(err)
	}
	q := []string{"quantize", "--depth", "8", "--method", "nearest", "--calib", "8", "--quiet", "--model", "m.safetensors"}
	with := func(base []string, more ...string) []string { return append(slices.Clone(base), more...) }
	const early = true
	for _, c := range []struct {
		name   string
		args   []string
		data   string // data folder ("" = the fake data set)
		code   int
		want   []string
		before bool   // stops before any work: nothing on stdout
		once   string // must appear exactly once in stderr
	}{
		// 1. Positional arguments: usage, exit 2, nothing run.
		{"positional", []string{"quantize", "mine.safetensors", "--wbits", "2", "--out", "x.safetensors"}, "", 2,
			[]string{`unexpected argument "mine.safetensors"`, "Usage: brecq quantize"}, early, "unexpected argument"},
		{"positional-eval", []string{"eval", "--depth", "8", "m.safetensors"}, "", 2, []string{`"m.safetensors"`}, early, ""},
		// 11. Flag errors exit 2 and print once.
		{"unknown-flag", []string{"eval", "--no-such-flag"}, "", 2, []string{"no-such-flag"}, early, "flag provided but not defined"},
		{"bad-int-syntax", []string{"quantize", "--batch", "abc"}, "", 2, []string{"flag -batch", `"abc"`}, early, "invalid value"},
		// 2. --out equal to --model or --json, also through a symbolic link.
		{"out-is-model", with(q, "--out", "m.safetensors"), "", 1, []string{"--out m.safetensors is the same file as --model"}, early, ""},
		{"out-link-to-model", with(q, "--out", "link.safetensors"), "", 1, []string{"same file as --model m.safetensors"}, early, ""},
		{"out-is-json", with(q, "--out", "o.x", "--json", "o.x"), "", 1, []string{"--json o.x is the same file as --out o.x"}, early, ""},
		{"json-is-model-eval", []string{"eval", "--depth", "8", "--model", "m.safetensors", "--json", "m.safetensors"}, "", 1,
			[]string{"same file as --model"}, early, ""},
		{"train-out-is-json", []string{"train", "--depth", "8", "--out", "t.x", "--json", "t.x"}, "", 1, []string{"same file as --out"}, early, ""},
		{"mixed-assign-is-out", []string{"mixed", "--depth", "8", "--model", "m.safetensors", "--out", "a.x", "--assign", "a.x"}, "", 1,
			[]string{"--assign a.x is the same file as --out a.x"}, early, ""},
		// 3. Output paths checked before the data is loaded.
		{"out-missing-folder", with(q, "--out", "nodir/q.safetensors"), "", 1, []string{"--out nodir/q.safetensors", "cannot write"}, early, ""},
		{"json-missing-folder-eval", []string{"eval", "--depth", "8", "--json", "nodir/e.json"}, "", 1, []string{"--json nodir/e.json"}, early, ""},
		{"json-missing-folder-bench", []string{"bench", "--depth", "8", "--json", "nodir/b.json"}, "", 1, []string{"--json nodir/b.json"}, early, ""},
		{"json-missing-folder-train", []string{"train", "--depth", "8", "--out", "nodir/t.safetensors"}, "", 1, []string{"nodir"}, early, ""},
		// 12. An existing directory as --out says so.
		{"out-is-directory", with(q, "--out", "adir"), "", 1, []string{"adir is a directory, not a file"}, early, ""},
		// 5. Batch at least 1 everywhere (eval: 0 = sized from the images).
		{"minibatch-bad", []string{"quantize", "--minibatch", "perm"}, "", 1, []string{`--minibatch "perm"`, "iid or distinct"}, early, ""},
		{"eval-batch-neg", []string{"eval", "--batch", "-1"}, "", 1, []string{"--batch -1", "at least 0"}, early, ""},
		{"quantize-batch-0", []string{"quantize", "--batch", "0"}, "", 1, []string{"--batch 0"}, early, ""},
		{"train-batch-0", []string{"train", "--batch", "0"}, "", 1, []string{"--batch"}, early, ""},
		// 6. Float flags: NaN, Inf and out-of-range values, with the range.
		{"lambda-nan", []string{"quantize", "--lambda", "NaN"}, "", 1, []string{"--lambda NaN", "[0, ∞)"}, early, ""},
		{"lambda-neg", []string{"quantize", "--lambda", "-5"}, "", 1, []string{"--lambda -5", "[0, ∞)"}, early, ""},
		{"lr-inf", []string{"quantize", "--lr", "Inf"}, "", 1, []string{"--lr +Inf", "(0, ∞)"}, early, ""},
		{"act-lr-neg", []string{"quantize", "--act-lr", "-1"}, "", 1, []string{"learning rates must be positive"}, early, ""},
		{"fisher-mix-nan", []string{"quantize", "--fisher-mix", "NaN"}, "", 1, []string{"--fisher-mix NaN", "[0, 1]"}, early, ""},
		{"drop-prob-2", []string{"quantize", "--drop-prob", "2"}, "", 1, []string{"--drop-prob 2", "(0, 1]"}, early, ""},
		{"max-cache-inf", []string{"quantize", "--max-cache-mb", "Inf"}, "", 1, []string{"--max-cache-mb +Inf"}, early, ""},
		{"mem-limit-neg", []string{"quantize", "--mem-limit-mb", "-1"}, "", 1, []string{"--mem-limit-mb -1", "[0, ∞)"}, early, ""},
		{"bench-mem-limit-nan", []string{"bench", "--mem-limit-mb", "NaN"}, "", 1, []string{"--mem-limit-mb NaN", "[0, ∞)"}, early, ""},
		{"mixed-lambda-nan", []string{"mixed", "--lambda", "NaN"}, "", 1, []string{"--lambda NaN"}, early, ""},
		{"mixed-bitops-nan", []string{"mixed", "--max-bitops", "NaN"}, "", 1, []string{"--max-bitops NaN"}, early, ""},
		{"train-lr-nan", []string{"train", "--lr", "NaN"}, "", 1, []string{"--lr"}, early, ""},
		{"train-lr-inf", []string{"train", "--lr", "Inf"}, "", 1, []string{"--lr +Inf", "(0, ∞)"}, early, ""},
		{"train-wd-neg", []string{"train", "--wd", "-1"}, "", 1, []string{"--wd -1", "[0, ∞)"}, early, ""},
		// 7. An empty test split or a batch larger than the data, before any work.
		{"empty-test-eval", []string{"eval", "--depth", "8", "--model", "m.safetensors"}, emptyTest, 1, []string{"test split holds no images"}, false, ""},
		{"empty-test-quantize", with(q, "--json", "e.json"), emptyTest, 1, []string{"test split holds no images"}, false, ""},
		{"train-batch-too-big", []string{"train", "--depth", "8", "--batch", "100", "--out", "big.safetensors"}, "", 1,
			[]string{"--batch 100", "only 48 images"}, false, ""},
		// 8. The budget is parsed before the sensitivity pass.
		{"mixed-budget-abc", []string{"mixed", "--depth", "8", "--model", "m.safetensors", "--budget", "abc"}, "", 1,
			[]string{`--budget "abc"`}, early, ""},
		// 9. Activation bits exactly 2..8 or 32; weight bits 2..8.
		{"abits-33", []string{"quantize", "--abits", "33"}, "", 1, []string{"--abits 33", "2..8 or 32"}, early, ""},
		{"act-input", []string{"quantize", "--act-input", "float"}, "", 1, []string{"--act-input \"float\"", "quantized or fp"}, early, ""},
		{"act-init", []string{"quantize", "--act-init", "global"}, "", 1, []string{"--act-init \"global\"", "unit or network"}, early, ""},
		{"act-init-images", []string{"quantize", "--act-init-images", "0"}, "", 1, []string{"--act-init-images 0", "at least 1"}, early, ""},
		{"abits-9", []string{"quantize", "--abits", "9"}, "", 1, []string{"--abits 9"}, early, ""},
		// 14. --rounding-from: not with qdrop, a file holding codes, never an output.
		{"rounding-from-qdrop", []string{"quantize", "--method", "qdrop", "--abits", "4", "--rounding-from", "m.safetensors"}, "", 1,
			[]string{"--rounding-from replaces the weight stage", "not qdrop"}, early, ""},
		{"rounding-from-checkpoint", with([]string{"quantize", "--depth", "8", "--iters", "1", "--calib", "8", "--quiet", "--model", "m.safetensors"},
			"--rounding-from", "m.safetensors", "--out", "r.safetensors"), "", 1,
			[]string{"--rounding-from", "m.safetensors", "no <layer>.weight_int tensors"}, early, ""},
		{"rounding-from-is-out", with(q, "--rounding-from", "other.json", "--out", "other.json"), "", 1,
			[]string{"--out other.json is the same file as --rounding-from other.json"}, early, ""},
		{"wbits-32", []string{"quantize", "--wbits", "32"}, "", 1, []string{"--wbits 32", "weight bits must be 2..8"}, early, ""},
		// 4. Non-finite weights rejected at load, naming the tensor.
		{"nan-weights-eval", []string{"eval", "--depth", "8", "--model", "nan.safetensors"}, "", 1,
			[]string{"nan.safetensors", `"layer1.0.conv1.weight"`, "NaN", "flat index 5"}, false, ""},
		{"inf-weights-quantize", []string{"quantize", "--depth", "8", "--method", "nearest", "--model", "inf.safetensors", "--out", "inf-q.safetensors"}, "", 1,
			[]string{`"layer1.0.conv1.weight"`, "+Inf"}, false, ""},
		// 12. Misleading messages reworded: half precision in one line, damaged gzip as corrupt.
		{"f16-checkpoint", []string{"eval", "--depth", "8", "--model", "f16.safetensors"}, "", 1,
			[]string{"are F16, want F32", "convert the checkpoint to float32"}, false, "F16"},
		{"damaged-gzip", []string{"eval", "--depth", "8", "--model", "m.safetensors"}, badGzip, 1, []string{"corrupt"}, false, ""},
		// 13. report: every non-record skipped the same way; nothing reported is an error.
		{"report-nothing", []string{"report", "other.json", "corrupt.json", "missing.json"}, "", 1,
			[]string{"skipping: other.json", "skipping: corrupt.json", "missing.json", "none of the 3 files"}, false, ""},
		{"report-some", []string{"report", "corrupt.json", record}, "", 0, []string{"skipping: corrupt.json"}, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := c.data
			if data == "" {
				data = dataDir
			}
			before := listDir(t, dir)
			r := runData(t, dir, data, c.args...)
			expect(t, r, c.code, c.args, c.want...)
			if c.before && r.stdout != "" {
				t.Errorf("brecq %s did work before failing; stdout:\n%s", strings.Join(c.args, " "), r.stdout)
			}
			if c.once != "" && strings.Count(r.stderr, c.once) != 1 {
				t.Errorf("brecq %s: %q appears %d times in stderr, want once:\n%s", strings.Join(c.args, " "), c.once,
					strings.Count(r.stderr, c.once), r.stderr)
			}
			if c.code != 0 {
				if after := listDir(t, dir); !slices.Equal(before, after) {
					t.Errorf("brecq %s changed the folder: %v -> %v", strings.Join(c.args, " "), before, after)
				}
			}
			if c.name == "f16-checkpoint" && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("half-precision checkpoint: %d lines, want 1:\n%s", strings.Count(r.stderr, "\n"), r.stderr)
			}
		})
	}
}

// TestOutputsKeepModeAndLinks: --out through a symbolic link replaces the
// link's target and keeps the link; an existing --json keeps its mode; both
// appear only when the run succeeds.
func TestOutputsKeepModeAndLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "real.safetensors"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.safetensors", filepath.Join(dir, "out.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r.json"), []byte("{}"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "r.json"), 0o640)
	args := []string{"quantize", "--depth", "8", "--method", "nearest", "--calib", "8", "--quiet", "--model", ckpt,
		"--out", "out.safetensors", "--json", "r.json"}
	expect(t, run(t, dir, args...), 0, args)
	if st, err := os.Lstat(filepath.Join(dir, "out.safetensors")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("--out link replaced by a file: %v %v", st.Mode(), err)
	}
	if _, _, err := safetensors.ReadFile(filepath.Join(dir, "real.safetensors")); err != nil {
		t.Errorf("the link's target does not hold the export: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "real.safetensors")); st.Mode().Perm() != 0o600 {
		t.Errorf("link target mode %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Join(dir, "r.json")); st.Mode().Perm() != 0o640 {
		t.Errorf("--json mode %v, want 0640", st.Mode().Perm())
	}
	if names := listDir(t, dir); strings.Join(names, " ") != "out.safetensors r.json real.safetensors" {
		t.Errorf("folder holds %v", names)
	}
}
