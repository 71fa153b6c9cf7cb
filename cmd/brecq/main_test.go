package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/safetensors"
	"github.com/brecq-go/brecq/datasets"
)

// Shared by the tests: the brecq binary, a tiny fake data set (12x12 images)
// and a matching ResNet-8 checkpoint, all in one temporary folder.
var (
	brecqBin string
	dataDir  string
	ckpt     string
	workRoot string
)

const imgSize = 12

func TestMain(m *testing.M) {
	os.Exit(func() int {
		var err error
		workRoot, err = os.MkdirTemp("", "brecq-cli-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(workRoot)
		brecqBin = filepath.Join(workRoot, "brecq")
		build := exec.Command("go", "build", "-o", brecqBin, ".")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
			return 1
		}
		if dataDir, err = writeFakeData(filepath.Join(workRoot, "data")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		net, err := models.CIFARResNet(8, 1, 1, imgSize, imgSize, datasets.NumClasses)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ckpt = filepath.Join(workRoot, "resnet8.safetensors")
		if err := models.SaveParams(ckpt, fptrain.Init(net, 1), map[string]string{"format": "pt"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// writeFakeData writes the four IDX files of a tiny data set: 48 training
// and 20 test images of 12x12 random pixels, labels i mod 10.
func writeFakeData(dir string) (string, error) {
	return writeFakeDataN(dir, [4]int{48, 48, 20, 20})
}

// writeFakeDataN writes the four IDX files with n[i] items each.
func writeFakeDataN(dir string, counts [4]int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i, n := range counts {
		var b bytes.Buffer
		if i%2 == 0 {
			binary.Write(&b, binary.BigEndian, []uint32{datasets.MagicImages, uint32(n), imgSize, imgSize})
			for j := 0; j < n*imgSize*imgSize; j++ {
				b.WriteByte(byte(r.IntN(256)))
			}
		} else {
			binary.Write(&b, binary.BigEndian, []uint32{datasets.MagicLabels, uint32(n)})
			for j := 0; j < n; j++ {
				b.WriteByte(byte(j % 10))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, datasets.FileNames[i]), b.Bytes(), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the brecq binary in dir (a fresh temporary folder if "") on the
// fake data set with the Go backend.
func run(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return runData(t, dir, dataDir, args...)
}

// runData is run on the data set in data.
func runData(t *testing.T, dir, data string, args ...string) result {
	t.Helper()
	cmd := exec.Command(brecqBin, args...)
	if dir == "" {
		dir = t.TempDir()
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), datasets.EnvDataDir+"="+data, "GOMLX_BACKEND=go")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("brecq %v: %v", args, err)
	}
	return res
}

func expect(t *testing.T, r result, code int, args []string, wantErr ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("brecq %s: exit code %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
		return
	}
	for _, w := range wantErr {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("brecq %s: stderr does not contain %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
}

func TestUsage(t *testing.T) {
	r := run(t, "")
	expect(t, r, 2, nil, "Usage:", "train", "eval", "quantize", "mixed", "report")
	args := []string{"frobnicate", "--x"}
	expect(t, run(t, "", args...), 2, args, `unknown command "frobnicate"`, "Usage:")
	for _, h := range []string{"help", "--help", "-h"} {
		r := run(t, "", h)
		if r.code != 0 || !strings.Contains(r.stdout, "Commands:") {
			t.Errorf("brecq %s: exit %d, stdout %q", h, r.code, r.stdout)
		}
	}
}

// TestCommandTable: the usage lists every command of the table, in its
// order, each with its summary.
func TestCommandTable(t *testing.T) {
	var b bytes.Buffer
	printUsage(&b)
	out := b.String()
	last := -1
	for _, c := range commands {
		i := strings.Index(out, "  "+c.name+" ")
		if i < 0 || !strings.Contains(out[i:], c.summary) {
			t.Errorf("usage lacks %q with its summary:\n%s", c.name, out)
			continue
		}
		if i < last {
			t.Errorf("%q is out of the table's order", c.name)
		}
		last = i
	}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	if got, want := strings.Join(names, " "), "train eval quantize mixed report export bench"; got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
}

func TestSubcommandHelp(t *testing.T) {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	for _, c := range names {
		for _, h := range []string{"--help", "-h"} {
			r := run(t, "", c, h)
			out := r.stdout + r.stderr
			if r.code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "Usage: brecq "+c) {
				t.Errorf("brecq %s %s: exit %d, output:\n%s", c, h, r.code, out)
			}
			if strings.Contains(out, "help requested") {
				t.Errorf("brecq %s %s prints an error:\n%s", c, h, out)
			}
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"quantize", "--wbits", "9"}, []string{"weight bits", "9"}},
		{[]string{"quantize", "--wbits", "4", "--abits", "1"}, []string{"activation bits", "1"}},
		{[]string{"quantize", "--granularity", "blocks"}, []string{"granularity", `"blocks"`}},
		{[]string{"quantize", "--method", "magic"}, []string{"method", "magic"}},
		{[]string{"quantize", "--calib", "0"}, []string{"--calib"}},
		{[]string{"train", "--epochs", "0"}, []string{"--epochs"}},
		{[]string{"train", "--lr", "-1"}, []string{"--lr"}},
		{[]string{"eval", "--depth", "9"}, []string{"depth 9"}},
		{[]string{"eval", "--data", "cifar"}, []string{"cifar"}},
	} {
		expect(t, run(t, "", c.args...), 1, c.args, c.want...)
	}
}

func TestEvalCheckpointErrors(t *testing.T) {
	args := []string{"eval", "--model", "/nonexistent.safetensors"}
	expect(t, run(t, "", args...), 1, args, "/nonexistent.safetensors")

	dir := t.TempDir()
	good, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.safetensors")
	os.WriteFile(truncated, good[:len(good)/2], 0o644)
	garbage := filepath.Join(dir, "garbage.safetensors")
	os.WriteFile(garbage, []byte("PK\x03\x04 a zip file, not safetensors"), 0o644)
	for _, p := range []string{truncated, garbage} {
		args := []string{"eval", "--depth", "8", "--model", p}
		expect(t, run(t, "", args...), 1, args, p)
	}
	// A checkpoint of another network: the error names the file and the tensors.
	args = []string{"eval", "--depth", "14", "--model", ckpt}
	expect(t, run(t, "", args...), 1, args, ckpt, "layer1.1.conv1.weight")
}

func TestEvalRuns(t *testing.T) {
	dir := t.TempDir()
	args := []string{"eval", "--depth", "8", "--model", ckpt, "--batch", "7", "--json", "eval.json"}
	r := run(t, dir, args...)
	expect(t, r, 0, args)
	if !strings.Contains(r.stdout, "(20 images): top-1 ") || !strings.Contains(r.stdout, "backend: go (from GOMLX_BACKEND)") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "eval.json")); err != nil {
		t.Error(err)
	}
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestQuantizeOut(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(t.TempDir(), "corrupt.safetensors")
	os.WriteFile(corrupt, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}"), 0o644)
	base := []string{"quantize", "--depth", "8", "--method", "nearest", "--calib", "8", "--quiet", "--model", ckpt}
	// Failures before and while loading leave no output file.
	for _, args := range [][]string{
		{"quantize", "--wbits", "9", "--out", "q.safetensors"},
		{"quantize", "--depth", "8", "--model", corrupt, "--out", "q.safetensors"},
		append(append([]string{}, base...), "--data", "nope", "--out", "q.safetensors"),
	} {
		r := run(t, dir, args...)
		if r.code != 1 {
			t.Errorf("brecq %v: exit %d, want 1\n%s", args, r.code, r.stderr)
		}
		if names := listDir(t, dir); len(names) != 0 {
			t.Errorf("brecq %v left %v", args, names)
		}
	}
	// A failing write at the end (the output path is a folder) leaves no
	// temporary file next to it.
	if err := os.MkdirAll(filepath.Join(dir, "q.safetensors", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, base...), "--out", "q.safetensors")
	r := run(t, dir, args...)
	expect(t, r, 1, args, "q.safetensors")
	if names := listDir(t, dir); len(names) != 1 || names[0] != "q.safetensors" {
		t.Errorf("after a failed export the folder holds %v", names)
	}
	// And a successful run writes exactly the file asked for.
	os.RemoveAll(filepath.Join(dir, "q.safetensors"))
	r = run(t, dir, args...)
	expect(t, r, 0, args)
	if names := listDir(t, dir); len(names) != 1 || names[0] != "q.safetensors" {
		t.Errorf("after export the folder holds %v", names)
	}
	ts, meta, err := safetensors.ReadFile(filepath.Join(dir, "q.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if meta["method"] != "nearest" || meta["wbits"] != "4" || ts["layer1.0.conv1.weight_int"] == nil {
		t.Errorf("exported metadata %v, %d tensors", meta, len(ts))
	}
}

func TestTrainRuns(t *testing.T) {
	dir := t.TempDir()
	args := []string{"train", "--depth", "8", "--epochs", "1", "--batch", "8", "--max-steps", "2", "--out", "t.safetensors"}
	r := run(t, dir, args...)
	expect(t, r, 0, args)
	if names := listDir(t, dir); strings.Join(names, " ") != "t.json t.safetensors" {
		t.Errorf("after training the folder holds %v", names)
	}
	net, err := models.CIFARResNet(8, 1, 1, imgSize, imgSize, datasets.NumClasses)
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err := models.LoadParams(filepath.Join(dir, "t.safetensors"), net)
	if err != nil {
		t.Fatal(err)
	}
	if meta["epoch"] != "1" || meta["model"] != "resnet8" {
		t.Errorf("checkpoint metadata %v", meta)
	}
}

func TestMixedSearchAndRun(t *testing.T) {
	dir := t.TempDir()
	base := []string{"mixed", "--depth", "8", "--model", ckpt, "--calib", "16", "--sens-images", "16", "--quiet", "--sens", "s.json"}
	args := append(append([]string{}, base...), "--budget", "3", "--search-only", "--assign", "a.json")
	r := run(t, dir, args...)
	expect(t, r, 0, args)
	if !strings.Contains(r.stdout, "wrote s.json") || !strings.Contains(r.stdout, "| layer1.0.conv1 |") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	var mix struct {
		AvgBits float64        `json:"avg_bits"`
		Bits    map[string]int `json:"bits"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "a.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &mix); err != nil {
		t.Fatal(err)
	}
	if len(mix.Bits) != 8 { // ResNet-8: layer1.0 (2 convs), layer2.0 and layer3.0 (2 convs + shortcut)
		t.Errorf("%d layers searched, want 8: %v", len(mix.Bits), mix.Bits)
	}
	if mix.AvgBits > 3+1e-9 || mix.AvgBits < 2 {
		t.Errorf("average bits %g outside [2, 3]", mix.AvgBits)
	}
	// The second search reads the cache instead of measuring again.
	r = run(t, dir, args...)
	expect(t, r, 0, args)
	if !strings.Contains(r.stdout, "sensitivity: read s.json") {
		t.Errorf("the cache was not used:\n%s", r.stdout)
	}
	// Impossible budgets, bad candidates and a stale cache are refused.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--budget", "1.5", "--search-only"}, []string{"--budget 1.5", "smallest"}},
		{[]string{"--budget", "abc"}, []string{"--budget", "abc"}},
		{[]string{"--candidates", "2,9"}, []string{"--candidates", "9"}},
		{[]string{"--calib", "12"}, []string{"s.json", "calibration"}},
	} {
		a := append(append([]string{}, base...), c.args...)
		expect(t, run(t, dir, a...), 1, a, c.want...)
	}
	// Search, reconstruct and evaluate with the chosen bits.
	args = append(append([]string{}, base...), "--budget", "3", "--iters", "4", "--abits", "32", "--json", "m.json")
	r = run(t, dir, args...)
	expect(t, r, 0, args)
	var rec struct {
		Options struct {
			LayerBits map[string]int `json:"layer_bits"`
		} `json:"options"`
		Mixed *struct {
			AvgBits float64 `json:"avg_bits"`
		} `json:"mixed"`
	}
	if b, err = os.ReadFile(filepath.Join(dir, "m.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Mixed == nil || len(rec.Options.LayerBits) == 0 {
		t.Errorf("record without the mixed assignment: %s", b)
	}
}

func TestQDropFlags(t *testing.T) {
	args := []string{"quantize", "--method", "qdrop", "--abits", "32"}
	expect(t, run(t, "", args...), 1, args, "qdrop", "activation bits")
	args = []string{"quantize", "--method", "qdrop", "--abits", "4", "--drop-prob", "0"}
	expect(t, run(t, "", args...), 1, args, "drop probability")
	args = []string{"quantize", "--depth", "8", "--model", ckpt, "--method", "qdrop", "--wbits", "2", "--abits", "4",
		"--iters", "4", "--calib", "16", "--quiet"}
	r := run(t, "", args...)
	expect(t, r, 0, args)
	if !strings.Contains(r.stdout, "QDrop (block, mse, p=0.5) W2A4") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

// TestEvalReadsExport: eval reads the tool's own quantized export, and at
// A32 (weights only) it reproduces the quantized top-1 that quantize
// measured through its own evaluator.
func TestEvalReadsExport(t *testing.T) {
	dir := t.TempDir()
	args := []string{"quantize", "--depth", "8", "--method", "nearest", "--wbits", "2", "--abits", "32", "--calib", "8", "--quiet",
		"--model", ckpt, "--out", "q.safetensors", "--json", "q.json"}
	expect(t, run(t, dir, args...), 0, args)
	var rec struct {
		QuantTop1 float64 `json:"quant_top1"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "q.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	args = []string{"eval", "--depth", "8", "--model", "q.safetensors"}
	r := run(t, dir, args...)
	expect(t, r, 0, args)
	if !strings.Contains(r.stdout, "quantized export of quantize (method nearest, W2A32)") {
		t.Errorf("eval does not say it read an export:\n%s", r.stdout)
	}
	if want := fmt.Sprintf("top-1 %.2f%%", rec.QuantTop1); !strings.Contains(r.stdout, want) {
		t.Errorf("eval of the export: want %q (quantize's figure):\n%s", want, r.stdout)
	}
	// An export of another network is refused by name.
	args = []string{"eval", "--depth", "14", "--model", "q.safetensors"}
	expect(t, run(t, dir, args...), 1, args, "not a quantized export of resnet14")
}

// TestQuantizeUnitLosses: --unit-losses puts each unit's whole-cache losses
// in the run record; without it only h decided and the rounding penalty are
// there, for the weight stage.
func TestQuantizeUnitLosses(t *testing.T) {
	dir := t.TempDir()
	for _, on := range []bool{false, true} {
		args := []string{"quantize", "--depth", "8", "--model", ckpt, "--wbits", "2", "--abits", "4",
			"--iters", "4", "--act-iters", "2", "--calib", "16", "--quiet", "--json", "r.json"}
		if on {
			args = append(args, "--unit-losses")
		}
		expect(t, run(t, dir, args...), 0, args)
		b, err := os.ReadFile(filepath.Join(dir, "r.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Units []map[string]any `json:"units"`
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		if len(rec.Units) == 0 {
			t.Fatalf("%v: no units in the record", args)
		}
		for _, u := range rec.Units {
			_, hasBefore := u["loss_before"]
			_, hasAfter := u["loss_after"]
			_, hasH := u["h_decided"]
			if hasBefore != on || hasAfter != on {
				t.Errorf("--unit-losses %v: unit %v %v has loss_before %v, loss_after %v", on, u["unit"], u["stage"], hasBefore, hasAfter)
			}
			if hasH != (u["stage"] == "weights") {
				t.Errorf("unit %v %v: h_decided present = %v", u["unit"], u["stage"], hasH)
			}
		}
	}
}

// TestQuantizeRoundingFrom: a run given another run's export with
// --rounding-from runs no weight stage and writes the same integer codes,
// and its record names the file and its SHA-256.
func TestQuantizeRoundingFrom(t *testing.T) {
	dir := t.TempDir()
	base := []string{"quantize", "--depth", "8", "--model", ckpt, "--wbits", "2", "--abits", "4", "--act-iters", "4",
		"--calib", "16", "--batch", "8", "--quiet"}
	a := append(slices.Clone(base), "--iters", "30", "--out", "a.safetensors")
	expect(t, run(t, dir, a...), 0, a)
	b := append(slices.Clone(base), "--iters", "30", "--rounding-from", "a.safetensors", "--out", "b.safetensors", "--json", "b.json")
	r := run(t, dir, b...)
	expect(t, r, 0, b)
	if !strings.Contains(r.stdout, "weight stage: the rounding of a.safetensors") {
		t.Errorf("the run does not say where its rounding comes from:\n%s", r.stdout)
	}
	ta, _, err := safetensors.ReadFile(filepath.Join(dir, "a.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	tb, _, err := safetensors.ReadFile(filepath.Join(dir, "b.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, x := range ta {
		if strings.HasSuffix(name, ".weight_int") {
			n++
			if !bytes.Equal(x.Raw, tb[name].Raw) {
				t.Errorf("%s differs between the run and the one given its rounding", name)
			}
		}
	}
	if n == 0 {
		t.Fatal("no codes in the export")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "b.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec QuantRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	sum, _ := fileSHA256(filepath.Join(dir, "a.safetensors"))
	if rec.RoundingFrom != "a.safetensors" || rec.RoundingSHA256 != sum {
		t.Errorf("record: rounding_from %q sha %q, want a.safetensors %s", rec.RoundingFrom, rec.RoundingSHA256, sum)
	}
	for _, u := range rec.Units {
		if u.Stage == "weights" {
			t.Errorf("record holds a weight-stage unit %s", u.Unit)
		}
	}
}
