package safetensors

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// CheckError lists every problem found by [CheckF32].
type CheckError struct {
	// Problems holds one line per problem, each starting with the quoted
	// tensor name, sorted.
	Problems []string

	// wrongDType maps a dtype to the problems (lines of Problems) of wanted
	// tensors stored in that dtype instead of F32.
	wrongDType map[string][]string
}

// Error returns a summary line followed by one indented line per problem.
// Two or more wanted tensors stored in the same non-F32 dtype (a half
// precision checkpoint) make one line that says to convert to F32; when
// that is the only problem, the message is that one line.
func (e *CheckError) Error() string {
	lines := e.Problems
	if len(e.wrongDType) > 0 {
		grouped := map[string]bool{}
		var head []string
		for _, dtype := range slices.Sorted(maps.Keys(e.wrongDType)) {
			ps := e.wrongDType[dtype]
			if len(ps) < 2 {
				continue
			}
			for _, p := range ps {
				grouped[p] = true
			}
			first, _, _ := strings.Cut(ps[0], ":")
			head = append(head, fmt.Sprintf("%d tensors (%s, …) are %s, want F32: convert the checkpoint to float32 first "+
				"(PyTorch: save_file({k: v.float() for k, v in state_dict.items()}, path))", len(ps), first, dtype))
		}
		if len(head) > 0 {
			for _, p := range e.Problems {
				if !grouped[p] {
					head = append(head, p)
				}
			}
			lines = head
			if len(lines) == 1 {
				return "safetensors: " + lines[0]
			}
		}
	}
	var b strings.Builder
	if len(lines) == 1 {
		b.WriteString("safetensors: 1 problem with the tensors:")
	} else {
		fmt.Fprintf(&b, "safetensors: %d problems with the tensors:", len(lines))
	}
	for _, p := range lines {
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
	add := func(name, format string, args ...any) string {
		p := fmt.Sprintf("%q: ", name) + fmt.Sprintf(format, args...)
		problems = append(problems, p)
		return p
	}
	wrongDType := map[string][]string{}
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
			wrongDType[dtype] = append(wrongDType[dtype], add(name, "dtype %s, want F32", dtype))
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
	for _, ps := range wrongDType {
		slices.Sort(ps)
	}
	return &CheckError{Problems: problems, wrongDType: wrongDType}
}
