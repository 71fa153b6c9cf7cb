package runrecord

import (
	"os"
	"path/filepath"
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
	write("a.json", `{"options":{"Method":"brecq","WBits":2,"ABits":4,"Granularity":"block","Loss":"mse"},"quant_top1":80.5,"fp_top1":90.1,"nearest_top1":40.2}`)
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

func TestBarChartSVG(t *testing.T) {
	svg := BarChartSVG("t", []string{"W2A4"}, []string{"a", "b"}, [][]float64{{50, 75}}, 0, 100)
	if strings.Count(svg, "<rect") != 4 { // two bars, two legend swatches
		t.Fatalf("want 2 bars + 2 legend boxes, got %d rects", strings.Count(svg, "<rect"))
	}
}
