package models

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/safetensors"
)

// IgnoredOnLoad tells which tensors of a PyTorch state_dict are skipped on
// load: BatchNorm's num_batches_tracked counters.
func IgnoredOnLoad(name string) bool { return strings.HasSuffix(name, ".num_batches_tracked") }

// LoadParams reads a safetensors state_dict for net. Every problem — missing,
// extra or mis-shaped tensors, non-F32 dtypes — is reported at once, each
// naming its tensor, together with the file name.
func LoadParams(path string, net *Net) (Params, map[string]string, error) {
	ts, meta, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if err := safetensors.CheckF32(ts, net.ParamShapes(), IgnoredOnLoad); err != nil {
		return nil, nil, fmt.Errorf("%s: not a %s state_dict: %w", path, net.Name, err)
	}
	p := Params{}
	for name, t := range ts {
		if IgnoredOnLoad(name) {
			continue
		}
		p[name] = tensors.FromFlatDataAndDimensions(append([]float32(nil), t.F32...), t.Shape...)
	}
	return p, meta, nil
}

// SaveParams writes params as a safetensors state_dict (F32, PyTorch names and
// layouts), atomically (temporary file, then rename).
func SaveParams(path string, params Params, meta map[string]string) error {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names)
	var ts []*safetensors.Tensor
	for _, n := range names {
		t := params[n]
		data, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return fmt.Errorf("models: tensor %q: %w", n, err)
		}
		ts = append(ts, safetensors.NewF32(n, t.Shape().Dimensions, data))
	}
	return safetensors.WriteFile(path, ts, meta)
}
