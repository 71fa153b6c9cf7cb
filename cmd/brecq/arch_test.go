package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/datasets/datasetstest"
)

// writeArchCheckpoint saves a seeded random arch for 3×side×side inputs and
// the given classes, in torchvision's layout, and returns its path.
func writeArchCheckpoint(t *testing.T, arch string, side, classes int) string {
	t.Helper()
	net, err := models.New(arch, 3, side, side, classes)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), arch+".safetensors")
	if err := models.SaveParams(path, fptrain.Init(net, 1), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestQuantizeResNet18Folder runs the paper's ResNet-18 W2A4 job end to end
// on a small generated image folder (reduced budget: 8 calibration images,
// 2 weight / 2 activation iterations per unit, 32×32 inputs), then checks
// the record and that eval reads the same checkpoint and data.
func TestQuantizeResNet18Folder(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end ResNet-18 run skipped in -short mode")
	}
	data := t.TempDir()
	if err := datasetstest.WriteFolder(data, 3, 6, 4, 1); err != nil {
		t.Fatal(err)
	}
	ck := writeArchCheckpoint(t, "resnet18", 32, 3)
	dir := t.TempDir()
	args := []string{"quantize", "--arch", "resnet18", "--model", ck, "--data", "folder:" + data, "--image-size", "32",
		"--wbits", "2", "--abits", "4", "--iters", "2", "--act-iters", "2", "--calib", "8", "--quiet", "--json", "q.json"}
	r := run(t, dir, args...)
	expect(t, r, 0, args)
	raw, err := os.ReadFile(filepath.Join(dir, "q.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec QuantRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Model != "resnet18" || rec.Calib != 8 || len(rec.CalibIndices) != 8 || !strings.HasPrefix(rec.Data, "folder:") {
		t.Errorf("record: model %q, calib %d, %d indices, data %q", rec.Model, rec.Calib, len(rec.CalibIndices), rec.Data)
	}
	// Weights: 8 residual blocks + the head are reconstructed, the stem is
	// not; activations: the 8 blocks' step sizes are learned (fc has none).
	stages := map[string][]string{}
	for _, u := range rec.Units {
		stages[u.Stage] = append(stages[u.Stage], u.Unit)
	}
	if w, a := stages["weights"], stages["activations"]; len(w) != 9 || len(a) != 8 || w[0] != "layer1.0" || w[8] != "fc" {
		t.Errorf("record units: weights %v, activations %v; want layer1.0 … layer4.1, fc and the 8 blocks", w, a)
	}
	if rec.QuantTop1 < 0 || rec.QuantTop1 > 100 {
		t.Errorf("top-1 %v out of [0, 100]", rec.QuantTop1)
	}
	args = []string{"eval", "--arch", "resnet18", "--model", ck, "--data", "folder:" + data, "--image-size", "32"}
	r = run(t, dir, args...)
	expect(t, r, 0, args)
	if !strings.Contains(r.stdout, "(12 images): top-1") {
		t.Errorf("eval did not evaluate the 12 validation images:\n%s", r.stdout)
	}
}

// TestArchDataMismatch: a checkpoint that is not the named architecture, or
// whose classifier does not fit the data set, is refused by name.
func TestArchDataMismatch(t *testing.T) {
	data := t.TempDir()
	if err := datasetstest.WriteFolder(data, 3, 2, 2, 1); err != nil {
		t.Fatal(err)
	}
	ck := writeArchCheckpoint(t, "resnet18", 32, 5)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--arch", "mobilenetv2", "--model", ck, "--data", "folder:" + data, "--image-size", "32"}, "nearest"},
		{[]string{"eval", "--arch", "resnet18", "--model", ck, "--data", "folder:" + data, "--image-size", "32"}, "5 classes, the data set 3"},
		{[]string{"eval", "--arch", "vgg16", "--model", ck, "--data", "folder:" + data}, "--arch vgg16: want one of"},
		{[]string{"eval", "--arch", "resnet18", "--model", ck, "--data", "folder:" + filepath.Join(data, "nope")}, "nope"},
		{[]string{"train", "--arch", "resnet18", "--data", "folder:" + data, "--image-size", "32", "--epochs", "1", "--batch", "2", "--out", "x.safetensors"}, "in-memory data set"},
	} {
		r := run(t, "", c.args...)
		expect(t, r, 1, c.args, c.want)
	}
}

// TestCheckpointMetadataWarns: a checkpoint whose metadata names another
// data set or network is used with a warning naming both.
func TestCheckpointMetadataWarns(t *testing.T) {
	net, err := models.CIFARResNet(8, 1, 1, imgSize, imgSize, 10)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "meta.safetensors")
	if err := models.SaveParams(path, fptrain.Init(net, 1), map[string]string{"format": "pt", "data": "mnist", "model": "resnet14"}); err != nil {
		t.Fatal(err)
	}
	args := []string{"eval", "--depth", "8", "--model", path}
	expect(t, run(t, "", args...), 0, args, "trained on --data mnist, used here with --data fashion-mnist", "holds a resnet14, used here as a resnet8")
}
