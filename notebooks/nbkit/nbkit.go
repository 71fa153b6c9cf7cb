// Package nbkit holds the small helpers shared by the notebooks in notebooks/:
// the budget switch, a per-kernel cache (GoNB runs every cell as a new
// program, so results that later cells need are cached on disk), Markdown
// tables, a small MLP trained with plain GoMLX, MNIST subsets and charts (line,
// scatter, histogram and bar charts drawn by margaid, see chart.go; heat maps in svg.go).
// The mathematics the notebooks are about stays in the notebooks.
package nbkit

import (
	"encoding/gob"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// EnvBudget is the environment variable that selects the notebooks' budget.
const EnvBudget = "BRECQ_BUDGET"

// Budget returns the value of $BRECQ_BUDGET and whether the notebook should run its
// reduced CI version ("ci"); anything else, including unset, means the full version.
func Budget() (name string, ci bool) {
	name = os.Getenv(EnvBudget)
	if name == "" {
		name = "unset (full)"
	}
	return name, os.Getenv(EnvBudget) == "ci"
}

// Pick returns ciValue under the CI budget and fullValue otherwise.
func Pick[T any](ciValue, fullValue T) T {
	if _, ci := Budget(); ci {
		return ciValue
	}
	return fullValue
}

var keyRE = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// knobKey is a hash of the values given to Knobs ("" before any call).
var knobKey string

// Knobs records the values of a notebook's knobs (sizes, iterations, seeds, paths); Cached
// keys every result by them, so a student who edits a knob gets a recomputed result, not one
// computed with the old value. Call it where the knobs are declared, after them:
//
//	var (
//		trainN   = nbkit.Pick(3000, 12000)
//		adaIters = nbkit.Pick(400, 4000)
//		_        = nbkit.Knobs(trainN, adaIters)
//	)
//
// (GoNB re-runs that declaration in every cell's program.) It returns the key, for display.
func Knobs(values ...any) string {
	h := fnv.New64a()
	for _, v := range values {
		fmt.Fprintf(h, "%T=%#v;", v, v)
	}
	knobKey = fmt.Sprintf("%016x", h.Sum64())
	return knobKey
}

// CacheDir returns the folder of Cached: $GONB_TMP_DIR/nbkit-cache (the kernel's own
// temporary module, removed with the kernel), or "" outside GoNB (no caching).
func CacheDir() string {
	if d := os.Getenv("GONB_TMP_DIR"); d != "" {
		return filepath.Join(d, "nbkit-cache")
	}
	return ""
}

// Cached returns fn()'s result, computed once per kernel: GoNB runs each cell as a new
// program, so a value that later cells need (a trained network, a Hessian) is stored
// with encoding/gob under key (plus the budget) in CacheDir and read back by later
// cells. The file name holds the budget and the hash of the values given to Knobs, so a
// changed knob recomputes. Restart the kernel to recompute anyway. Outside GoNB it just
// calls fn.
func Cached[T any](key string, fn func() T) T {
	dir := CacheDir()
	if dir == "" {
		return fn()
	}
	budget, _ := Budget()
	path := filepath.Join(dir, keyRE.ReplaceAllString(key+"_"+budget+"_"+knobKey, "_")+".gob")
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		var v T
		if err := gob.NewDecoder(f).Decode(&v); err != nil {
			panic(fmt.Sprintf("nbkit: reading cached %q: %v", key, err))
		}
		return v
	}
	v := fn()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		panic(err)
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		panic(err)
	}
	if err := gob.NewEncoder(f).Encode(v); err != nil {
		f.Close()
		panic(fmt.Sprintf("nbkit: caching %q: %v", key, err))
	}
	if err := f.Close(); err != nil {
		panic(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		panic(err)
	}
	return v
}

// Table returns a Markdown table.
func Table(header []string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// G formats v with n significant digits (%.*g), switching to exponent form for very
// small or large magnitudes; NaN and ±Inf print as such.
func G(v float64, n int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	a := math.Abs(v)
	if a != 0 && (a < 1e-3 || a >= 1e6) {
		s := fmt.Sprintf("%.*e", max(n-1, 0), v)
		// 1.23e-05 → 1.23·10⁻⁵ reads better in a table.
		mant, exp, _ := strings.Cut(s, "e")
		e := 0
		fmt.Sscanf(exp, "%d", &e)
		return mant + "·10" + superscript(e)
	}
	return fmt.Sprintf("%.*g", n, v)
}

// Pct formats a fraction as a percentage with d decimals.
func Pct(v float64, d int) string { return fmt.Sprintf("%.*f%%", d, 100*v) }

func superscript(e int) string {
	digits := []rune("⁰¹²³⁴⁵⁶⁷⁸⁹")
	s := ""
	if e < 0 {
		s = "⁻"
		e = -e
	}
	for _, c := range fmt.Sprint(e) {
		s += string(digits[c-'0'])
	}
	return s
}

// clockStart is StartClock's time outside GoNB.
var clockStart time.Time

// StartClock records now as the start of a run, in CacheDir (GoNB runs every cell as a new
// program, so the time is kept in a file). Elapsed uses it where the wiring cell's go.sum is
// not there (outside a notebook kernel).
func StartClock() {
	clockStart = time.Now()
	dir := CacheDir()
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clock-start"), []byte(strconv.FormatInt(clockStart.UnixNano(), 10)), 0o600); err != nil {
		panic(err)
	}
}

// Elapsed returns the wall time of the notebook run so far: since the first cell copied go.sum
// into the kernel's module ($GONB_TMP_DIR/go.sum, written by the wiring cell every notebook starts
// with), else since StartClock; 0 if neither is known. Kernel start-up is not included.
func Elapsed() time.Duration {
	start := clockStart
	if d := os.Getenv("GONB_TMP_DIR"); d != "" {
		if fi, err := os.Stat(filepath.Join(d, "go.sum")); err == nil {
			return time.Since(fi.ModTime())
		}
	}
	if dir := CacheDir(); dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "clock-start")); err == nil {
			if ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				start = time.Unix(0, ns)
			}
		}
	}
	if start.IsZero() {
		return 0
	}
	return time.Since(start)
}
