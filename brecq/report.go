package brecq

import (
	"math"
	"sort"
)

// UnitReport records one unit's optimisation.
type UnitReport struct {
	Unit       string  `json:"unit"`
	Stage      string  `json:"stage"` // "weights" or "activations"
	Iters      int     `json:"iters"`
	Seconds    float64 `json:"seconds"`
	CacheMB    float64 `json:"cache_mb"`
	RecLoss    float64 `json:"rec_loss_end"`
	RecLoss0   float64 `json:"rec_loss_start"`
	RoundLoss  float64 `json:"round_loss_end"`
	FisherMean float64 `json:"fisher_g2_mean,omitempty"`
	// CacheSeconds is the time spent caching the unit's inputs and targets;
	// FisherSeconds the time of the Fisher (gradient) pass, both included in Seconds.
	CacheSeconds float64 `json:"cache_seconds"`
	// CacheOnDisk is set when one of the unit's caches did not fit in
	// Options.MaxCacheMB (with the others in memory) and was kept in a file.
	CacheOnDisk   bool    `json:"cache_on_disk,omitempty"`
	FisherSeconds float64 `json:"fisher_seconds,omitempty"`
	// IterMS is the median wall time of one optimisation iteration in
	// milliseconds, IterMSLo / IterMSHi its 10th and 90th percentiles.
	IterMS   float64 `json:"iter_ms"`
	IterMSLo float64 `json:"iter_ms_p10"`
	IterMSHi float64 `json:"iter_ms_p90"`
	// Convergence of the weight stage: HDecided is the fraction of the
	// unit's rounding variables whose h(V) is exactly 0 or 1 at the end of
	// the stage, before hard rounding (h = clip(σ(V)(ζ − γ) + γ, 0, 1));
	// RoundPerWeight the rounding regulariser per weight at the last
	// iteration, (1/n) Σ (1 − |2h − 1|^β) at that iteration's β (0: every
	// h decided).
	HDecided       *float64 `json:"h_decided,omitempty"`
	RoundPerWeight *float64 `json:"round_per_weight,omitempty"`
	// With Options.UnitLosses: the stage's loss (LpLoss, p = 2 for the
	// weights, ActP for the activations, unweighted) over the whole cache of
	// the unit's calibration inputs, before and after the stage. Weights:
	// nearest rounding before, hard rounding by V after; activations: the
	// initial step sizes before, the learned ones after.
	LossBefore *float64 `json:"loss_before,omitempty"`
	LossAfter  *float64 `json:"loss_after,omitempty"`
	LossP      float64  `json:"loss_p,omitempty"`
}

// IterStats is one optimisation iteration of a unit's stage, as
// Options.OnIter receives it.
type IterStats struct {
	Unit  string
	Stage string // "weights" or "activations"
	Iter  int    // 0-based, of Iters
	Iters int
	// Rec is the iteration's minibatch loss before its Adam step, LpLoss
	// (mean over batch and positions of Σ_c w·|ŷ − y|^p): p = 2 (w the
	// Fisher weights with LossFisher, else 1) in the weight stage, p = ActP
	// in the activation stage — the values of UnitReport.RecLoss0 and
	// RecLoss.
	Rec float64
	// Weight stage only (0 in the activation stage). Round is the rounding
	// regulariser per weight before the step at the iteration's β,
	// (1/n) Σ_i (1 − |2h(V_i) − 1|^β) over the unit's n rounding variables,
	// whether or not it is in the loss; Lambda the weight λ it has in the
	// loss (0 during the warm-up), Beta the iteration's β
	// (BetaSchedule.Beta). Decided is the fraction of h(V_i) exactly 0 or 1
	// after the step (UnitReport.HDecided at the last iteration).
	Round, Lambda, Beta, Decided float64
}

// iterTimes collects per-iteration wall times of one unit.
type iterTimes []float64

// record sets the median and the 10th / 90th percentiles of the times (ms) in rep.
func (t iterTimes) record(rep *UnitReport) {
	if len(t) == 0 {
		return
	}
	s := append([]float64(nil), t...)
	sort.Float64s(s)
	q := func(f float64) float64 { return s[int(math.Round(f*float64(len(s)-1)))] }
	rep.IterMS, rep.IterMSLo, rep.IterMSHi = q(0.5), q(0.1), q(0.9)
}

// Report is what a quantization run did.
type Report struct {
	Units   []UnitReport `json:"units"`
	Seconds float64      `json:"seconds"`
}
