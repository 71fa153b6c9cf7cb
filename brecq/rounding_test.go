package brecq

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSetRoundingReproducesTheWeightStage: a run given another run's
// rounding through its export (Export → ReadRounding → SetRounding) skips
// the weight stage and ends with the same integer codes in every layer; with
// LSQ off, the activation ranges — searched on the network those codes make —
// are bit-identical to the other run's too.
func TestSetRoundingReproducesTheWeightStage(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 32)
	for _, method := range []Method{MethodBRECQ, MethodAdaRound} {
		opt := DefaultOptions(2, 4)
		opt.Method, opt.WeightIters, opt.ActIters, opt.Batch = method, 20, 0, 8
		if method == MethodAdaRound {
			opt.Granularity = Layer
		}
		a, err := NewQuantizer(b, net, p, x, opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Run(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "a.safetensors")
		if err := a.Q.Export(path, a.EvalMode(), nil); err != nil {
			t.Fatal(err)
		}
		rd, err := ReadRounding(path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewQuantizer(b, net, p, x, opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetRounding(rd); err != nil {
			t.Fatal(err)
		}
		var units int
		c.OnUnit = func(*RunState) error { units++; return nil }
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.Report.Units {
			if r.Stage == "weights" {
				t.Errorf("%s: the weight stage ran (unit %s) although the rounding was given", method, r.Unit)
			}
		}
		changed := 0
		for _, l := range net.Layers() {
			m := a.EvalMode().Weight(l.Name)
			want, err := a.Q.IntegerCodes(l.Name, m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Q.IntegerCodes(l.Name, m)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: layer %s: codes differ from the run that made the rounding", method, l.Name)
			}
			if near, _ := a.Q.IntegerCodes(l.Name, RoundNearest); !slices.Equal(near, want) {
				changed++
			}
		}
		if changed == 0 {
			t.Fatalf("%s: the weight stage left every layer at nearest rounding: the test shows nothing", method)
		}
		for name, aq := range a.Q.AQ {
			if got := c.Q.AQ[name]; !slices.Equal(got.Scale, aq.Scale) || !slices.Equal(got.ZeroPoint, aq.ZeroPoint) {
				t.Errorf("%s: activation range of %s %v, want %v (same weights, same search)", method, name, got, aq)
			}
		}
	}
}

// TestSetRoundingRefusesWhatAdaRoundCannotGive: codes AdaRound cannot reach
// (neither ⌊w/s⌋ nor ⌊w/s⌋ + 1), a missing layer and method qdrop are
// refused with the layer or the method named.
func TestSetRoundingRefusesWhatAdaRoundCannotGive(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 8)
	opt := DefaultOptions(4, 32)
	opt.WeightIters, opt.Batch = 1, 4
	fresh := func(o Options) *Quantizer {
		q, err := NewQuantizer(b, net, p, x, o)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	q := fresh(opt)
	rd := Rounding{Codes: map[string][]uint8{}, WQ: map[string]QParams{}}
	for _, l := range net.Layers() {
		m := q.EvalMode().Weight(l.Name)
		codes, err := q.Q.IntegerCodes(l.Name, m)
		if err != nil {
			t.Fatal(err)
		}
		rd.Codes[l.Name], rd.WQ[l.Name] = codes, q.Q.WQ[l.Name]
	}
	if err := fresh(opt).SetRounding(rd); err != nil {
		t.Fatalf("the run's own initial codes: %v", err)
	}
	layer := net.Layers()[1].Name
	bad := Rounding{Codes: map[string][]uint8{}, WQ: rd.WQ}
	for k, v := range rd.Codes {
		bad.Codes[k] = slices.Clone(v)
	}
	// Move one code two steps away from ⌊w/s⌋ + z (inside the 4-bit grid).
	c := bad.Codes[layer][0]
	if c >= 8 {
		bad.Codes[layer][0] = c - 3
	} else {
		bad.Codes[layer][0] = c + 3
	}
	if err := fresh(opt).SetRounding(bad); err == nil || !strings.Contains(err.Error(), layer) || !strings.Contains(err.Error(), "element 0") {
		t.Errorf("a code three steps off: error %v, want one naming %s and element 0", err, layer)
	}
	missing := Rounding{Codes: map[string][]uint8{}, WQ: rd.WQ}
	for k, v := range rd.Codes {
		if k != layer {
			missing.Codes[k] = v
		}
	}
	if err := fresh(opt).SetRounding(missing); err == nil || !strings.Contains(err.Error(), layer) {
		t.Errorf("a missing layer: error %v, want one naming %s", err, layer)
	}
	qo := DefaultOptions(4, 4)
	qo.Method, qo.WeightIters, qo.Batch = MethodQDrop, 1, 4
	if err := fresh(qo).SetRounding(rd); err == nil || !strings.Contains(err.Error(), "qdrop") {
		t.Errorf("method qdrop: error %v, want a refusal naming it", err)
	}
}
