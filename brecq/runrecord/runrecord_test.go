package runrecord

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLoadFindNearest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.json", `{"options":{"Method":"brecq","WBits":2,"ABits":4,"Granularity":"block","Loss":"mse","ClassifierInputBits":8},"quant_top1":80.5,"fp_top1":90.1,"nearest_top1":40.2}`)
	write("b.json", `{"options":{"Method":"adaround","WBits":2,"ABits":4,"Granularity":"layer","Loss":"mse"},"quant_top1":79}`)
	recs, err := LoadGlob(filepath.Join(dir, "*.json"))
	if err != nil || len(recs) != 2 {
		t.Fatalf("LoadGlob: %v, %d records", err, len(recs))
	}
	if r := Find(recs, 2, 4, "brecq", "block", "mse"); r == nil || r.QuantTop1 != 80.5 {
		t.Fatalf("Find brecq block: %+v", r)
	}
	if r := Find(recs, 2, 4, "brecq", "net", "mse"); r != nil {
		t.Fatalf("Find matched the wrong granularity: %+v", r)
	}
	if v, ok := Nearest(recs, 2, 4); !ok || v != 40.2 {
		t.Fatalf("Nearest = %v, %v; want 40.2 from the --compare record", v, ok)
	}
	if v, ok := FP(recs); !ok || v != 90.1 {
		t.Fatalf("FP = %v, %v", v, ok)
	}
	write("c.json", `{"epochs": 3}`)
	if _, err := Load(filepath.Join(dir, "c.json")); err == nil || !strings.Contains(err.Error(), "c.json") {
		t.Fatalf("a training record loaded as a quantize record: %v", err)
	}
}

// TestFindPrefersCommonBudgetAndSkipsOthers: a variant with another
// calibration size does not stand in for the main table's run; non-record
// JSON beside the records is skipped; malformed JSON is an error.
func TestFindPrefersCommonBudgetAndSkipsOthers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(method string, calib int, top1 float64, nearest float64) string {
		return `{"options":{"Method":"` + method + `","WBits":2,"ABits":4,"Granularity":"block","Loss":"mse","WeightIters":300,"ActIters":100,"ClassifierInputBits":8},` +
			`"calib_images":` + itoa(calib) + `,"quant_top1":` + ftoa(top1) + `,"nearest_top1":` + ftoa(nearest) + `}`
	}
	write("a-c128.json", rec("brecq", 128, 70, 10))
	write("b.json", rec("brecq", 1024, 80, 20))
	write("c.json", rec("adaround", 1024, 78, 0))
	write("sensitivity.json", `{"options":{"candidates":[2,4,8],"images":256},"problem":{}}`)
	recs, err := LoadGlob(filepath.Join(dir, "*.json"))
	if err != nil || len(recs) != 3 {
		t.Fatalf("LoadGlob: %v, %d records (want 3: the sensitivity file skipped)", err, len(recs))
	}
	if r := Find(recs, 2, 4, "brecq", "block", "mse"); r == nil || r.QuantTop1 != 80 {
		t.Fatalf("Find picked %+v, want the 1024-image run", r)
	}
	if v, ok := Nearest(recs, 2, 4); !ok || v != 20 {
		t.Fatalf("Nearest = %v, %v; want 20 from the 1024-image record", v, ok)
	}
	write("d.json", `{"options": [`)
	if _, err := LoadGlob(filepath.Join(dir, "*.json")); err == nil || !strings.Contains(err.Error(), "d.json") {
		t.Fatalf("malformed JSON was not reported: %v", err)
	}
}

func itoa(v int) string     { return strconv.Itoa(v) }
func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func TestFindPrefersPlainFisher(t *testing.T) {
	mk := func(mix float64, top1 float64) *Quant {
		r := &Quant{QuantTop1: top1, Calib: 1024}
		r.Options.Method, r.Options.WBits, r.Options.ABits = "brecq", 2, 4
		r.Options.Granularity, r.Options.Loss, r.Options.FisherMix = "block", "fisher", mix
		return r
	}
	recs := []*Quant{mk(0.5, 1), mk(1, 2)}
	if r := Find(recs, 2, 4, "brecq", "block", "fisher"); r == nil || r.QuantTop1 != 2 {
		t.Fatalf("Find picked %+v, want the α = 1 record", r)
	}
}

// TestFindPrefersDefaultActivationStage: a run with the authors' activation
// stage (--authors), even at a higher top-1, does not stand in for the main
// table's default run, nor does a record of another network.
func TestFindPrefersDefaultActivationStage(t *testing.T) {
	mk := func(model string, authors bool, top1, nearest float64) *Quant {
		r := &Quant{Model: model, QuantTop1: top1, NearestTop1: nearest, Calib: 1024}
		o := &r.Options
		o.Method, o.WBits, o.ABits, o.Granularity, o.Loss = "brecq", 2, 2, "block", "mse"
		o.WeightIters, o.ActIters, o.ClassifierInputBits = 300, 100, 8
		if authors {
			*o = o.AuthorsActivationStage()
		}
		return r
	}
	recs := []*Quant{mk("resnet20", true, 64, 17), mk("mobilenetv2-s1", false, 70, 30), mk("resnet20", false, 61, 16)}
	if r := Find(recs, 2, 2, "brecq", "block", "mse"); r == nil || r.QuantTop1 != 61 {
		t.Fatalf("Find picked %+v, want the default run (61)", r)
	}
	if v, ok := Nearest(recs, 2, 2); !ok || v != 16 {
		t.Fatalf("Nearest = %v, %v; want 16 from the default run", v, ok)
	}
	if r := Find(recs[:2], 2, 2, "brecq", "block", "mse"); r == nil || r.QuantTop1 != 64 {
		t.Fatalf("without a default run Find picked %+v, want the --authors run of the shipped model", r)
	}
	if _, ok := Nearest(recs[:2], 2, 2); ok {
		t.Fatalf("Nearest used a non-default or other-network record")
	}
}
