package brecq

// Mode says, for one graph, how each layer's weights are rounded and which
// activation points are quantized. Layers missing from Weights use
// DefaultWeights; points missing from Acts are unquantized.
type Mode struct {
	DefaultWeights RoundingMode
	Weights        map[string]RoundingMode
	Acts           map[string]bool
	// DropProb, when in (0, 1), is QDrop: each element at a switched-on
	// activation point keeps its quantized value with probability DropProb
	// and its full-precision value otherwise (a fresh draw per element and
	// per pass: x̃ = m·q(x) + (1 − m)·x, m ~ Bernoulli(DropProb)).
	DropProb float64
}

// Weight returns the rounding mode of layer name.
func (m Mode) Weight(name string) RoundingMode {
	if r, ok := m.Weights[name]; ok {
		return r
	}
	return m.DefaultWeights
}

// FPMode is the full-precision network (no quantization anywhere).
func FPMode() Mode { return Mode{DefaultWeights: RoundOff} }

// dropping reports whether the mode draws QDrop masks.
func (m Mode) dropping() bool { return m.DropProb > 0 && m.DropProb < 1 }

// The modes a run builds, each an explicit value given to a graph when it is
// built (the QNet holds values only):
//
//	FPMode      nothing quantized: the targets
//	weightMode  a unit's weights under optimisation (RoundSoft), earlier units hard-rounded
//	prefixMode  the network before a unit: the input of the unit
//	unitMode    weightMode, with every activation quantized under QDrop
//	actMode     the activation stage: weights final, the initialised points quantized
//	EvalMode    the finished quantized network
//
// The stem's weights are always at nearest rounding: the stem is never
// reconstructed.

// weightMode is the mode for optimising unit u's weights: units before it
// hard-rounded, u's layers with the given rounding, the stem at nearest.
func (r *Quantizer) weightMode(done map[string]bool, u *Unit, cur RoundingMode) Mode {
	m := Mode{DefaultWeights: RoundOff, Weights: map[string]RoundingMode{}}
	stem := r.Q.Net.Blocks[0].Layers[0].Name
	m.Weights[stem] = RoundNearest
	for l := range done {
		m.Weights[l] = RoundHard
	}
	if u != nil {
		for _, l := range u.Layers {
			m.Weights[l.Name] = cur
		}
	}
	return m
}

// prefixMode is the mode of the network before a unit whose predecessors'
// layers are done: those hard-rounded, the stem at nearest, and under QDrop
// every activation point quantized.
func (r *Quantizer) prefixMode(done map[string]bool) Mode {
	return r.unitMode(done, nil, RoundOff)
}

// allActs switches on every activation point with a quantizer.
func (r *Quantizer) allActs() map[string]bool {
	on := map[string]bool{}
	for p := range r.Q.AQ {
		on[p] = true
	}
	return on
}

// EvalMode is the mode of the finished quantized network: every weight
// hard-rounded by its learned V (at nearest with MethodNearest), the stem at
// nearest, and every activation point quantized when ABits < 32.
func (r *Quantizer) EvalMode() Mode {
	m := Mode{DefaultWeights: RoundHard, Acts: map[string]bool{}}
	if r.opt.Method == MethodNearest {
		m.DefaultWeights = RoundNearest
	}
	stem := r.Q.Net.Blocks[0].Layers[0].Name
	m.Weights = map[string]RoundingMode{stem: RoundNearest}
	if r.opt.ABits < 32 {
		for _, p := range ActPoints(r.Q.Net) {
			m.Acts[p] = true
		}
	}
	return m
}

// unitMode is weightMode plus, under QDrop, every activation point quantized.
func (r *Quantizer) unitMode(done map[string]bool, u *Unit, cur RoundingMode) Mode {
	m := r.weightMode(done, u, cur)
	if r.opt.Method == MethodQDrop {
		m.Acts = r.allActs()
	}
	return m
}

// actMode: every weight rounded by w (the stem at nearest), the given
// activation points quantized.
func (r *Quantizer) actMode(on map[string]bool, w RoundingMode) Mode {
	m := r.EvalMode()
	m.DefaultWeights = w
	m.Acts = on
	return m
}
