package brecq

import "slices"

// RunState is a Quantizer's progress: how far each stage has come and every
// value learned so far (AdaRound's V, the weight and activation quantizers),
// with the state of the random source that draws minibatches and QDrop's
// masks. A state taken after a finished unit (Quantizer.OnUnit) and given to
// Resume on a Quantizer built with the same network, checkpoint,
// calibration images and options lets Run continue from the next unit with
// exactly the result of an uninterrupted run: the calibration streams are
// recomputed from the images with the finished units quantized, and every
// later random draw is the one the uninterrupted run would make.
type RunState struct {
	// QDropInit: QDrop's initial activation ranges are set.
	QDropInit bool
	// WeightUnits is the number of finished weight-stage units (in Units order).
	WeightUnits int
	// ActSteps is the number of finished activation-stage steps: 1 for the
	// stem output's range, then one per unit of ActUnits.
	ActSteps int
	// RNG is the binary state of the PCG source (rand.PCG.MarshalBinary).
	RNG []byte
	V   map[string][]float32
	WQ  map[string]QParams
	AQ  map[string]QParams
	// Units are the run reports of the finished units.
	Units []UnitReport
}

// state returns a deep copy of the run's current state.
func (r *Quantizer) state() (*RunState, error) {
	rng, err := r.pcg.MarshalBinary()
	if err != nil {
		return nil, errorf("run state: %w", err)
	}
	s := &RunState{QDropInit: r.progress.QDropInit, WeightUnits: r.progress.WeightUnits, ActSteps: r.progress.ActSteps,
		RNG: rng, V: map[string][]float32{}, WQ: map[string]QParams{}, AQ: map[string]QParams{},
		Units: slices.Clone(r.Report.Units)}
	for k, v := range r.Q.V {
		s.V[k] = slices.Clone(v)
	}
	for k, q := range r.Q.WQ {
		s.WQ[k] = q.clone()
	}
	for k, q := range r.Q.AQ {
		s.AQ[k] = q.clone()
	}
	return s, nil
}

func (q QParams) clone() QParams {
	return QParams{Bits: q.Bits, Scale: slices.Clone(q.Scale), ZeroPoint: slices.Clone(q.ZeroPoint), Shape: slices.Clone(q.Shape)}
}

// checkpoint hands the current state to OnUnit, if set.
func (r *Quantizer) checkpoint() error {
	if r.OnUnit == nil {
		return nil
	}
	s, err := r.state()
	if err != nil {
		return err
	}
	return r.OnUnit(s)
}

// Resume installs a state saved by an earlier run of a Quantizer built
// with the same network, checkpoint, calibration images and options
// (the caller checks those), so that Run continues after its last finished
// unit. Every layer and activation point in s must belong to the network,
// with the quantizer's bit-widths and the weights' sizes.
func (r *Quantizer) Resume(s *RunState) error {
	if s == nil {
		return errorf("resume: no state")
	}
	for name, v := range s.V {
		cur, ok := r.Q.V[name]
		if !ok || len(cur) != len(v) {
			return errorf("resume: the state's rounding variable of %q (%d values) does not fit this network", name, len(v))
		}
	}
	for name, q := range s.WQ {
		if cur, ok := r.Q.WQ[name]; !ok || cur.Bits != q.Bits || len(cur.Scale) != len(q.Scale) {
			return errorf("resume: the state's weight quantizer of %q does not fit this network and bit-widths", name)
		}
	}
	for name, q := range s.AQ {
		if bits, ok := r.Q.ABits[name]; !ok || bits != q.Bits {
			return errorf("resume: the state's activation quantizer of %q does not fit this network and bit-widths", name)
		}
	}
	if len(s.V) != len(r.Q.V) || len(s.WQ) != len(r.Q.WQ) {
		return errorf("resume: the state holds %d rounding variables and %d weight quantizers, this run %d and %d",
			len(s.V), len(s.WQ), len(r.Q.V), len(r.Q.WQ))
	}
	if err := r.pcg.UnmarshalBinary(s.RNG); err != nil {
		return errorf("resume: random state: %w", err)
	}
	for k, v := range s.V {
		r.Q.V[k] = slices.Clone(v)
	}
	for k, q := range s.WQ {
		r.Q.WQ[k] = q.clone()
	}
	r.Q.AQ = map[string]QParams{}
	for k, q := range s.AQ {
		r.Q.AQ[k] = q.clone()
	}
	r.Report.Units = slices.Clone(s.Units)
	r.progress = runProgress{QDropInit: s.QDropInit, WeightUnits: s.WeightUnits, ActSteps: s.ActSteps}
	return nil
}

// runProgress counts what a run has finished (see RunState).
type runProgress struct {
	QDropInit   bool
	WeightUnits int
	ActSteps    int
}
