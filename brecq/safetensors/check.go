package safetensors

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// CheckError lists every problem found by [CheckF32].
type CheckError struct {
	// Problems holds one line per problem, each starting with the quoted
	// tensor name, sorted.
	Problems []string
}

// Error returns a summary line followed by one indented line per problem.
func (e *CheckError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("safetensors: 1 problem with the tensors:")
	} else {
		fmt.Fprintf(&b, "safetensors: %d problems with the tensors:", len(e.Problems))
	}
	for _, p := range e.Problems {
		b.WriteString("\n\t")
		b.WriteString(p)
	}
	return b.String()
}

// IgnoreSuffix returns a function for [CheckF32] that reports whether a
// name ends in one of the suffixes, e.g.
// IgnoreSuffix(".num_batches_tracked") for PyTorch state_dicts.
func IgnoreSuffix(suffixes ...string) func(name string) bool {
	return func(name string) bool {
		for _, s := range suffixes {
			if strings.HasSuffix(name, s) {
				return true
			}
		}
		return false
	}
}

// CheckF32 checks that tensors holds exactly the wanted F32 tensors, with
// the wanted shapes (an empty shape is a scalar). It returns nil or a
// *[CheckError] listing, all at once and sorted by name, every missing
// tensor, every unexpected extra tensor, every shape mismatch, every wanted
// tensor whose dtype is not F32 and every F32 tensor whose number of values
// does not match its shape. Names for which ignore (which may be nil)
// returns true are skipped, both in tensors and in want.
func CheckF32(tensors map[string]*Tensor, want map[string][]int, ignore func(name string) bool) error {
	skip := func(name string) bool { return ignore != nil && ignore(name) }
	var problems []string
	add := func(name, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%q: ", name)+fmt.Sprintf(format, args...))
	}
	for name, shape := range want {
		if skip(name) {
			continue
		}
		t, ok := tensors[name]
		if !ok {
			add(name, "missing (want F32 shape %s)", shapeString(shape))
			continue
		}
		if t == nil {
			add(name, "nil tensor (want F32 shape %s)", shapeString(shape))
			continue
		}
		if !slices.Equal(t.Shape, shape) {
			add(name, "shape %s, want %s", shapeString(t.Shape), shapeString(shape))
		}
		if dtype := cmp.Or(t.DType, F32); dtype != F32 {
			add(name, "dtype %s, want F32", dtype)
		} else if n := t.NumElements(); len(t.F32) != n {
			add(name, "has %d F32 values but its shape %s implies %d", len(t.F32), shapeString(t.Shape), n)
		}
	}
	for name, t := range tensors {
		if _, ok := want[name]; ok || skip(name) {
			continue
		}
		if t == nil {
			add(name, "unexpected nil tensor")
			continue
		}
		add(name, "unexpected (dtype %s, shape %s)", cmp.Or(t.DType, F32), shapeString(t.Shape))
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return &CheckError{Problems: problems}
}
