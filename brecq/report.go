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
