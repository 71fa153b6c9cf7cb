package brecq

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateReportsWithoutChanging: Validate leaves the options as given
// and reports an AdaRound run that is not layer-wise MSE, naming the option;
// AdaRoundOptions is a valid AdaRound configuration.
func TestValidateReportsWithoutChanging(t *testing.T) {
	o := DefaultOptions(2, 4)
	o.Method = MethodAdaRound // block granularity from DefaultOptions
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), "granularity") {
		t.Errorf("adaround at block granularity: error %v, want one naming the granularity", err)
	}
	if o.Granularity != Block || o.Loss != LossMSE {
		t.Errorf("Validate changed the options: granularity %s, loss %s", o.Granularity, o.Loss)
	}
	f := AdaRoundOptions(2, 4)
	if err := f.Validate(); err != nil {
		t.Errorf("AdaRoundOptions: %v", err)
	}
	if f.Method != MethodAdaRound || f.Granularity != Layer || f.Loss != LossMSE {
		t.Errorf("AdaRoundOptions = %s/%s/%s, want adaround/layer/mse", f.Method, f.Granularity, f.Loss)
	}
	f.Loss = LossFisher
	if err := f.Validate(); err == nil {
		t.Error("adaround with Fisher loss: want an error")
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.Method = "sgd" },
		func(o *Options) { o.Granularity = "row" },
		func(o *Options) { o.Loss = "kl" },
		func(o *Options) { o.WBits = 1 },
		func(o *Options) { o.Batch = 0 },
		func(o *Options) { o.FisherMix = 2 },
	} {
		o := DefaultOptions(2, 4)
		bad(&o)
		if o.Validate() == nil {
			t.Errorf("options %+v: want an error", o)
		}
	}
}

// TestOptionsFixedAtConstruction: changing the options (or their LayerBits
// map) after NewQuantizer does not reach the Quantizer, nor does changing
// the copy Options returns.
func TestOptionsFixedAtConstruction(t *testing.T) {
	net, p, x := testNet(t, 8)
	opt := DefaultOptions(2, 32)
	opt.Method = MethodNearest
	layer := net.Layers()[1].Name
	opt.LayerBits = map[string]int{layer: 4}
	q, err := NewQuantizer(testBackend(t), net, p, x, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.WBits = 3
	opt.LayerBits[layer] = 8
	got := q.Options()
	if got.WBits != 2 || got.LayerBits[layer] != 4 {
		t.Errorf("options changed from outside: wbits %d, %s bits %d; want 2 and 4", got.WBits, layer, got.LayerBits[layer])
	}
	got.LayerBits[layer] = 8
	if q.Options().LayerBits[layer] != 4 {
		t.Error("the copy returned by Options shares its LayerBits map with the Quantizer")
	}
}

// TestErrorPrefixOnce: an error of the package starts with "brecq: " once,
// also when it wraps another brecq error, and still unwraps to it.
func TestErrorPrefixOnce(t *testing.T) {
	o := DefaultOptions(1, 4)
	err := o.Validate()
	if err == nil {
		t.Fatal("1-bit weights accepted")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "brecq: ") || strings.Count(msg, "brecq:") != 1 || !strings.Contains(msg, "weight bits") {
		t.Errorf("error %q: want one \"brecq: \" prefix and the option's name", msg)
	}
	inner := ValidateBits(1)
	wrapped := errorf("layer %s: %w", "conv1", inner)
	if wrapped.Error() != "brecq: layer conv1: unsupported bit-width 1: must be in [2, 8]" {
		t.Errorf("wrapped error %q", wrapped)
	}
	if !errors.Is(wrapped, inner) {
		t.Error("wrapped error does not unwrap to the inner one")
	}
}
