// Package runrecord is the JSON record a `brecq quantize` run writes, and
// helpers to load a set of them (for tables, notebooks and reports).
package runrecord

import (
	"encoding/json"
	"errors"
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
	// RoundingFrom is the file the weight stage's rounding was taken from
	// (brecq quantize --rounding-from; "" = the run's own weight stage),
	// RoundingSHA256 the SHA-256 of its bytes.
	RoundingFrom   string `json:"rounding_from,omitempty"`
	RoundingSHA256 string `json:"rounding_sha256,omitempty"`
	// Mixed is set by `brecq mixed`: the bit-width search behind the run.
	Mixed *Mixed `json:"mixed,omitempty"`

	// PeakRSSMB is the process's peak resident memory (getrusage maxrss, MB
	// of 2^20 bytes) at the end of the run, CalibPeakRSSMB the same at the
	// end of the calibration (before any evaluation); 0 = not measured.
	PeakRSSMB      float64 `json:"peak_rss_mb,omitempty"`
	CalibPeakRSSMB float64 `json:"calib_peak_rss_mb,omitempty"`
	// File is where the record was loaded from (not stored).
	File string `json:"-"`
}

// Mixed describes a mixed-precision run: the budget, the per-layer
// bit-widths found and their cost.
type Mixed struct {
	// BudgetAvgBits is the budget as average bits per searched weight.
	BudgetAvgBits float64 `json:"budget_avg_bits"`
	// AvgBits = Σ params·bits / Σ params over the searched layers.
	AvgBits     float64        `json:"avg_bits"`
	Candidates  []int          `json:"candidates"`
	Bits        map[string]int `json:"bits"`
	Sensitivity float64        `json:"sensitivity"`
	// UniformSensitivity is the total sensitivity of uniform bit-widths at
	// each candidate (key: bits) that fits the budget, for comparison.
	UniformSensitivity map[string]float64 `json:"uniform_sensitivity,omitempty"`
	SizeBits           float64            `json:"size_bits"`
	SensFile           string             `json:"sensitivity_file,omitempty"`
	SensImages         int                `json:"sensitivity_images"`
	SensSeconds        float64            `json:"sensitivity_seconds"`
	SearchSeconds      float64            `json:"search_seconds"`
	Evaluations        int                `json:"evaluations"`
}

// Key names a record by its settings, e.g. "W2A4 brecq block mse".
func (q *Quant) Key() string {
	o := q.Options
	if o.Method == brecq.MethodNearest {
		return fmt.Sprintf("W%dA%d nearest", o.WBits, o.ABits)
	}
	if q.Mixed != nil {
		return fmt.Sprintf("W%.2fA%d mixed %s %s %s", q.Mixed.BudgetAvgBits, o.ABits, o.Method, o.Granularity, o.Loss)
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
		return nil, fmt.Errorf("%s: %w (no weight bits)", path, ErrNotRecord)
	}
	r.File = path
	return &r, nil
}

// ErrNotRecord marks a JSON file that is not a quantization run record
// (e.g. a sensitivity cache or benchmark result beside the records).
var ErrNotRecord = errors.New("not a quantization run record")

// LoadGlob reads every record matching pattern, sorted by file name.
// Well-formed JSON files that are not run records are skipped; anything
// unreadable or malformed is an error.
func LoadGlob(pattern string) ([]*Quant, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*Quant
	for _, f := range files {
		r, err := Load(f)
		if errors.Is(err, ErrNotRecord) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Budget is a run's budget: iterations per unit and calibration images.
type Budget struct{ Iters, ActIters, Calib int }

// BudgetOf returns the budget of r.
func BudgetOf(r *Quant) Budget {
	return Budget{r.Options.WeightIters, r.Options.ActIters, r.Calib}
}

// CommonBudget is the budget most records share (the main table's), ties
// to the first seen.
func CommonBudget(recs []*Quant) Budget {
	count := map[Budget]int{}
	var best Budget
	for _, r := range recs {
		if r.Mixed != nil || r.Options.Method == brecq.MethodNearest {
			continue
		}
		b := BudgetOf(r)
		count[b]++
		if count[b] > count[best] {
			best = b
		}
	}
	return best
}

// Find returns the uniform-precision record whose settings match
// (granularity and loss are ignored for nearest rounding), preferring one
// at the common budget and with the plain Fisher weights (so variants with
// other calibration sizes, iteration counts or Fisher mixes do not stand in
// for the main table) and, above all, with the default activation stage
// (DefaultActivationStage); only records of the shipped ResNet-20; or nil.
func Find(recs []*Quant, wbits, abits int, method brecq.Method, g brecq.Granularity, loss brecq.Loss) *Quant {
	common := CommonBudget(recs)
	var best *Quant
	bestScore := -1
	for _, r := range recs {
		o := r.Options
		if r.Mixed != nil || o.WBits != wbits || o.ABits != abits || o.Method != method {
			continue
		}
		if method != brecq.MethodNearest && (o.Granularity != g || o.Loss != loss) {
			continue
		}
		if !shippedModel(r) {
			continue
		}
		score := 0
		if DefaultActivationStage(o) {
			score += 4
		}
		if method == brecq.MethodNearest || BudgetOf(r) == common {
			score += 2
		}
		if o.Loss != brecq.LossFisher || (o.FisherMix == 1 && !o.FisherDamped) {
			score++
		}
		if score > bestScore {
			best, bestScore = r, score
		}
	}
	return best
}

// DefaultActivationStage reports whether a run used the tool's default
// activation stage (LSQ on quantized inputs, ranges unit by unit on 256
// images, the classifier input at 8 bits): the settings of the main results
// table, which Find prefers over runs with --authors or --act-input fp.
func DefaultActivationStage(o brecq.Options) bool {
	return o.ActInput == brecq.ActInputQuantized && o.ActInit == brecq.ActInitUnit && o.ActInitImages == 0 &&
		o.ClassifierInputBits == 8
}

// shippedModel reports whether a record is of the shipped ResNet-20 (records
// of other networks, e.g. the MobileNetV2 testbed, are never picked by Find).
func shippedModel(r *Quant) bool { return r.Model == "" || r.Model == "resnet20" }

// Nearest returns nearest-rounding top-1 at W/A from a dedicated record or
// from a --compare record, and whether one was found.
func Nearest(recs []*Quant, wbits, abits int) (float64, bool) {
	if r := Find(recs, wbits, abits, brecq.MethodNearest, "", ""); r != nil && DefaultActivationStage(r.Options) {
		return r.QuantTop1, true
	}
	common := CommonBudget(recs)
	for _, r := range recs {
		if r.Options.WBits == wbits && r.Options.ABits == abits && r.NearestTop1 > 0 && r.Calib == common.Calib && r.Mixed == nil &&
			shippedModel(r) && DefaultActivationStage(r.Options) {
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
