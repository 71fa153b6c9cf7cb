package safetensors

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCheckF32(t *testing.T) {
	tensors := map[string]*Tensor{
		"conv.weight":             NewF32("conv.weight", []int{4, 3, 3, 3}, make([]float32, 108)),
		"bn.weight":               NewF32("bn.weight", []int{3}, make([]float32, 3)),
		"bn.num_batches_tracked":  NewI64("bn.num_batches_tracked", nil, []int64{7}),
		"fc.weight":               NewF32("fc.weight", []int{10, 512}, make([]float32, 5120)),
		"fc.extra":                NewF32("fc.extra", nil, []float32{1}),
		"half":                    {Name: "half", DType: F16, Shape: []int{2}, Raw: make([]byte, 4)},
		"short":                   NewF32("short", []int{3}, []float32{1, 2}),
		"scalar":                  NewF32("scalar", nil, []float32{1}),
		"bn2.num_batches_tracked": NewI64("bn2.num_batches_tracked", nil, []int64{7}),
	}
	want := map[string][]int{
		"conv.weight":              {4, 3, 3, 3},
		"bn.weight":                {4},
		"bn.bias":                  {4},
		"fc.weight":                {1000, 512},
		"half":                     {2},
		"short":                    {3},
		"scalar":                   {},
		"bn.num_batches_tracked":   {},
		"gone.num_batches_tracked": {},
	}
	err := CheckF32(tensors, want, IgnoreSuffix(".num_batches_tracked"))
	var ce *CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *CheckError", err)
	}
	wantProblems := []string{
		`"bn.bias": missing (want F32 shape [4])`,
		`"bn.weight": shape [3], want [4]`,
		`"fc.extra": unexpected (dtype F32, shape [])`,
		`"fc.weight": shape [10 512], want [1000 512]`,
		`"half": dtype F16, want F32`,
		`"short": has 2 F32 values but its shape [3] implies 3`,
	}
	if !slices.Equal(ce.Problems, wantProblems) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(ce.Problems, "\n"), strings.Join(wantProblems, "\n"))
	}
	wantMsg := "safetensors: 6 problems with the tensors:\n\t" + strings.Join(wantProblems, "\n\t")
	if err.Error() != wantMsg {
		t.Errorf("message:\n%s\nwant:\n%s", err, wantMsg)
	}

	// Without ignore, the I64 counters are reported too.
	err = CheckF32(tensors, want, nil)
	for _, s := range []string{
		`"bn.num_batches_tracked": dtype I64, want F32`,
		`"bn2.num_batches_tracked": unexpected (dtype I64, shape [])`,
		`"gone.num_batches_tracked": missing (want F32 shape [])`,
	} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("without ignore: error %v does not contain %q", err, s)
		}
	}

	// A matching set passes.
	ok := map[string][]int{"conv.weight": {4, 3, 3, 3}, "scalar": nil}
	sub := map[string]*Tensor{"conv.weight": tensors["conv.weight"], "scalar": tensors["scalar"], "x.num_batches_tracked": tensors["bn.num_batches_tracked"]}
	if err := CheckF32(sub, ok, IgnoreSuffix(".num_batches_tracked")); err != nil {
		t.Errorf("matching set: %v", err)
	}

	// One problem, and nil tensors.
	err = CheckF32(map[string]*Tensor{"a": nil, "b": nil}, map[string][]int{"a": {1}}, nil)
	wantMsg = "safetensors: 2 problems with the tensors:\n\t\"a\": nil tensor (want F32 shape [1])\n\t\"b\": unexpected nil tensor"
	if err == nil || err.Error() != wantMsg {
		t.Errorf("nil tensors: %v", err)
	}
	err = CheckF32(nil, map[string][]int{"a": {1}}, nil)
	if err == nil || err.Error() != "safetensors: 1 problem with the tensors:\n\t\"a\": missing (want F32 shape [1])" {
		t.Errorf("one problem: %v", err)
	}
}

func TestCheckF32AfterRead(t *testing.T) {
	tensors, _, err := ReadBytes(handFile(t), "hand")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"layer.weight": {2, 3}, "layer.bias": {2}}
	if err := CheckF32(tensors, want, IgnoreSuffix(".num_batches_tracked")); err != nil {
		t.Error(err)
	}
}

// A half-precision checkpoint gets one line saying to convert it, not one
// line per tensor; other problems are still listed.
func TestCheckF32HalfPrecisionOneLine(t *testing.T) {
	tensors := map[string]*Tensor{}
	want := map[string][]int{}
	for _, n := range []string{"a.weight", "b.weight", "c.weight"} {
		tensors[n] = &Tensor{Name: n, DType: F16, Shape: []int{2}, Raw: make([]byte, 4)}
		want[n] = []int{2}
	}
	err := CheckF32(tensors, want, nil)
	var ce *CheckError
	if !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Fatalf("err = %v, want a *CheckError with 3 problems", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, `3 tensors ("a.weight", …) are F16, want F32`) || !strings.Contains(msg, "convert") {
		t.Errorf("message is not one line saying to convert:\n%s", msg)
	}
	want["d.bias"] = []int{1}
	msg = CheckF32(tensors, want, nil).Error()
	if lines := strings.Split(msg, "\n"); len(lines) != 3 || !strings.Contains(msg, `"d.bias": missing`) || !strings.Contains(lines[1], "3 tensors") {
		t.Errorf("with another problem:\n%s", msg)
	}
}
