// Package runrecord is the JSON record a `brecq quantize` run writes, and
// helpers to load a set of them (for tables, notebooks and reports).
package runrecord

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/brecq-go/brecq/brecq"
)

// Quant is the record of one quantization run: every setting, the machine,
// the calibration sample, the accuracies and the time spent.
type Quant struct {
	Command      string             `json:"command"`
	Checkpoint   string             `json:"checkpoint"`
	Model        string             `json:"model"`
	Data         string             `json:"data"`
	Backend      string             `json:"backend"`
	Machine      string             `json:"machine"`
	Options      brecq.Options      `json:"options"`
	Calib        int                `json:"calib_images"`
	CalibSeed    uint64             `json:"calib_seed"`
	CalibIndices []int              `json:"calib_indices"`
	FPTop1       float64            `json:"fp_top1,omitempty"`
	NearestTop1  float64            `json:"nearest_top1,omitempty"`
	QuantTop1    float64            `json:"quant_top1"`
	TestLoss     float64            `json:"test_loss"`
	CalibLoss    float64            `json:"calib_loss"`
	CalibTop1    float64            `json:"calib_top1"`
	CalibSeconds float64            `json:"calib_seconds"`
	EvalSeconds  float64            `json:"eval_seconds"`
	Units        []brecq.UnitReport `json:"units"`
	Output       string             `json:"output,omitempty"`
	// File is where the record was loaded from (not stored).
	File string `json:"-"`
}

// Key names a record by its settings, e.g. "W2A4 brecq block mse".
func (q *Quant) Key() string {
	o := q.Options
	if o.Method == brecq.MethodNearest {
		return fmt.Sprintf("W%dA%d nearest", o.WBits, o.ABits)
	}
	return fmt.Sprintf("W%dA%d %s %s %s", o.WBits, o.ABits, o.Method, o.Granularity, o.Loss)
}

// Load reads one record.
func Load(path string) (*Quant, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Quant
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: not a run record: %w", path, err)
	}
	if r.Options.WBits == 0 {
		return nil, fmt.Errorf("%s: not a quantize run record (no weight bits)", path)
	}
	r.File = path
	return &r, nil
}

// LoadGlob reads every record matching pattern, sorted by file name.
func LoadGlob(pattern string) ([]*Quant, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*Quant
	for _, f := range files {
		r, err := Load(f)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Find returns the record whose settings match (granularity and loss are
// ignored for nearest rounding), or nil.
func Find(recs []*Quant, wbits, abits int, method brecq.Method, g brecq.Granularity, loss brecq.Loss) *Quant {
	for _, r := range recs {
		o := r.Options
		if o.WBits != wbits || o.ABits != abits || o.Method != method {
			continue
		}
		if method == brecq.MethodNearest || (o.Granularity == g && o.Loss == loss) {
			return r
		}
	}
	return nil
}

// Nearest returns nearest-rounding top-1 at W/A from a dedicated record or
// from a --compare record, and whether one was found.
func Nearest(recs []*Quant, wbits, abits int) (float64, bool) {
	if r := Find(recs, wbits, abits, brecq.MethodNearest, "", ""); r != nil {
		return r.QuantTop1, true
	}
	for _, r := range recs {
		if r.Options.WBits == wbits && r.Options.ABits == abits && r.NearestTop1 > 0 {
			return r.NearestTop1, true
		}
	}
	return 0, false
}

// FP returns the FP top-1 from any --compare record.
func FP(recs []*Quant) (float64, bool) {
	for _, r := range recs {
		if r.FPTop1 > 0 {
			return r.FPTop1, true
		}
	}
	return 0, false
}
