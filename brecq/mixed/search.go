// Package mixed is the mixed-precision bit-width search of BRECQ (Li et al.,
// 2021) §3.4.
//
// The problem: choose a weight bit-width b_l ∈ Candidates for every layer l so as to minimise the
// total measured block sensitivity Σ_B Sens_B[combo_B(b)] subject to a model-size budget
// Σ_l Params_l·b_l ≤ MaxBits and, optionally, a BitOPs budget Σ_l MACs_l·b_l·ABits ≤ MaxBitOPs.
// Block sensitivities are assumed additive across blocks (BRECQ §3.4; docs/algorithm.md §8), so scoring an assignment
// is one table look-up per block. SearchGA is the paper's genetic algorithm; SearchExhaustive
// enumerates every assignment and is meant for checking the GA on small problems.
// The block sensitivities themselves are measured by brecq.Quantizer.MeasureSensitivity.
package mixed

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// minBits and maxBits bound the candidate bit-widths: those of brecq's
// uniform quantizers (brecq.MinBits, brecq.MaxBits).
const minBits, maxBits = 2, 8

// Layer is one layer whose weight bit-width b_l is searched. It contributes Params·b_l bits to
// the model size and MACs·b_l·ABits to the BitOPs.
type Layer struct {
	Name   string `json:"name"`
	Params int64  `json:"params"` // number of weights
	MACs   int64  `json:"macs"`   // multiply-accumulates per image (for BitOPs)
}

// Block is a group of layers whose joint sensitivity was measured for every combination of
// candidate bit-widths (blocks are assumed to add up).
//
// For a block with layers l_0 … l_{m−1} taking candidate indices i_0 … i_{m−1} (position of
// b_{l_j} in Problem.Candidates) and K = len(Candidates), the combination index is
// c = Σ_j i_j·K^(m−1−j), i.e. mixed radix with the first layer the most significant digit.
type Block struct {
	Name   string `json:"name"`
	Layers []int  `json:"layers"` // indices into Problem.Layers, in order
	// Sens[c] is the sensitivity when the block's layers take the bit-widths of
	// combination c: mixed radix over Candidates with the block's FIRST layer the
	// MOST significant digit, so len(Sens) = len(Candidates)^len(Layers).
	Sens []float64 `json:"sens"`
}

// Problem is a mixed-precision bit-width search problem:
//
//	minimise   Σ_B Sens_B[c_B(b)]
//	subject to Σ_l Params_l·b_l ≤ MaxBits
//	           Σ_l MACs_l·b_l·ABits ≤ MaxBitOPs   (only when MaxBitOPs > 0)
//
// over b_l ∈ Candidates, where c_B(b) is the combination index of block B (see Block).
type Problem struct {
	Layers     []Layer `json:"layers"`
	Blocks     []Block `json:"blocks"`
	Candidates []int   `json:"candidates"` // ascending distinct bit-widths, e.g. {2,4,8}
	MaxBits    float64 `json:"max_bits"`
	MaxBitOPs  float64 `json:"max_bitops,omitempty"`
	ABits      int     `json:"abits,omitempty"` // activation bits for BitOPs (32 when 0)
}

// Result is an assignment b (Bits) and its costs: Sensitivity = Σ_B Sens_B[c_B(b)] (summed in
// block order), SizeBits = Σ_l Params_l·b_l, BitOPs = Σ_l MACs_l·b_l·ABits.
type Result struct {
	Bits        []int   `json:"bits"` // per layer, same order as Problem.Layers
	Sensitivity float64 `json:"sensitivity"`
	SizeBits    float64 `json:"size_bits"`
	BitOPs      float64 `json:"bitops"`
	Evaluations int     `json:"evaluations"` // assignments scored
}

// GAConfig configures SearchGA. Population, Generations and Tournament take their defaults when
// ≤ 0 and MutationP takes 1/len(Layers) when 0; Elite and CrossoverP are used as given (0 disables
// elitism resp. crossover), so start from DefaultGAConfig.
type GAConfig struct {
	Population  int     // 50
	Generations int     // 200
	Elite       int     // 5: best individuals copied unchanged
	Tournament  int     // 3: tournament size for parent selection
	CrossoverP  float64 // 0.9: probability of uniform crossover per child
	MutationP   float64 // per-gene probability of a random candidate (default 1/len(Layers) when 0)
	Seed        uint64
}

// gaStallGenerations is the number of generations without improvement of the best feasible
// assignment after which SearchGA stops early.
const gaStallGenerations = 50

// gaDuplicateTries is how many children SearchGA breeds for one population slot before accepting a
// duplicate of an individual already in the next generation.
const gaDuplicateTries = 3

// maxExhaustiveAssignments is the largest K^n SearchExhaustive accepts.
const maxExhaustiveAssignments = 10_000_000

// maxBlockCombos bounds K^m for one block, to keep len(Sens) checks free of overflow.
const maxBlockCombos = 1 << 30

// DefaultGAConfig returns Population 50, Generations 200, Elite 5, Tournament 3, CrossoverP 0.9,
// MutationP 0 (i.e. 1/len(Layers)) and Seed 0.
func DefaultGAConfig() GAConfig {
	return GAConfig{Population: 50, Generations: 200, Elite: 5, Tournament: 3, CrossoverP: 0.9}
}

// abits returns the activation bit-width used for BitOPs (32 when ABits is 0).
func (p *Problem) abits() float64 {
	if p.ABits == 0 {
		return 32
	}
	return float64(p.ABits)
}

// Validate checks the problem: at least one layer and one candidate; candidates strictly ascending
// and each accepted by ValidateBits; Params, MACs ≥ 0; every layer in exactly one block; every block
// non-empty with len(Sens) = K^len(Layers) and every Sens finite and ≥ 0; MaxBits > 0; MaxBitOPs ≥ 0;
// ABits ≥ 0; and the all-smallest assignment b_l = Candidates[0] meets the budgets, i.e.
// Σ_l Params_l·Candidates[0] ≤ MaxBits and (when MaxBitOPs > 0) Σ_l MACs_l·Candidates[0]·ABits ≤ MaxBitOPs.
func (p *Problem) Validate() error {
	if len(p.Layers) == 0 {
		return fmt.Errorf("mixed: mixed-precision problem has no layers")
	}
	if len(p.Candidates) == 0 {
		return fmt.Errorf("mixed: mixed-precision problem has no candidate bit-widths")
	}
	for i, c := range p.Candidates {
		if c < minBits || c > maxBits {
			return fmt.Errorf("mixed: candidate %d: unsupported bit-width %d: must be in [%d, %d]", i, c, minBits, maxBits)
		}
		if i > 0 && c <= p.Candidates[i-1] {
			return fmt.Errorf("mixed: candidates %v must be strictly ascending", p.Candidates)
		}
	}
	for i, l := range p.Layers {
		if l.Params < 0 || l.MACs < 0 {
			return fmt.Errorf("mixed: layer %d (%q) has negative params (%d) or MACs (%d)", i, l.Name, l.Params, l.MACs)
		}
	}
	k := len(p.Candidates)
	owner := make([]int, len(p.Layers))
	for i := range owner {
		owner[i] = -1
	}
	for bi, b := range p.Blocks {
		if len(b.Layers) == 0 {
			return fmt.Errorf("mixed: block %d (%q) has no layers", bi, b.Name)
		}
		combos := 1
		for _, l := range b.Layers {
			if l < 0 || l >= len(p.Layers) {
				return fmt.Errorf("mixed: block %d (%q) refers to layer %d, out of range [0, %d)", bi, b.Name, l, len(p.Layers))
			}
			if owner[l] >= 0 {
				return fmt.Errorf("mixed: layer %d (%q) is in both block %d (%q) and block %d (%q)",
					l, p.Layers[l].Name, owner[l], p.Blocks[owner[l]].Name, bi, b.Name)
			}
			owner[l] = bi
			if combos > maxBlockCombos/k {
				return fmt.Errorf("mixed: block %d (%q) has too many combinations (%d^%d)", bi, b.Name, k, len(b.Layers))
			}
			combos *= k
		}
		if len(b.Sens) != combos {
			return fmt.Errorf("mixed: block %d (%q) has len(Sens) = %d, want %d^%d = %d",
				bi, b.Name, len(b.Sens), k, len(b.Layers), combos)
		}
		for c, s := range b.Sens {
			if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
				return fmt.Errorf("mixed: block %d (%q) Sens[%d] = %v: must be finite and ≥ 0", bi, b.Name, c, s)
			}
		}
	}
	for l, o := range owner {
		if o < 0 {
			return fmt.Errorf("mixed: layer %d (%q) is in no block", l, p.Layers[l].Name)
		}
	}
	if math.IsNaN(p.MaxBits) || p.MaxBits <= 0 {
		return fmt.Errorf("mixed: MaxBits = %v must be > 0", p.MaxBits)
	}
	if math.IsNaN(p.MaxBitOPs) || p.MaxBitOPs < 0 {
		return fmt.Errorf("mixed: MaxBitOPs = %v must be ≥ 0 (0 = no BitOPs budget)", p.MaxBitOPs)
	}
	if p.ABits < 0 {
		return fmt.Errorf("mixed: ABits = %d must be ≥ 0 (0 = 32)", p.ABits)
	}
	smallest := make([]int, len(p.Layers))
	for i := range smallest {
		smallest[i] = p.Candidates[0]
	}
	size, bitops := p.resources(smallest)
	if size > p.MaxBits {
		return fmt.Errorf("mixed: size budget MaxBits = %v is below the smallest model (all layers at %d bits) of %v bits",
			p.MaxBits, p.Candidates[0], size)
	}
	if p.MaxBitOPs > 0 && bitops > p.MaxBitOPs {
		return fmt.Errorf("mixed: BitOPs budget MaxBitOPs = %v is below the smallest model (all layers at %d bits) of %v BitOPs",
			p.MaxBitOPs, p.Candidates[0], bitops)
	}
	return nil
}

// resources returns Σ Params·b and Σ MACs·b·ABits without checking bits.
func (p *Problem) resources(bits []int) (size, bitops float64) {
	a := p.abits()
	for i, l := range p.Layers {
		size += float64(l.Params) * float64(bits[i])
		bitops += float64(l.MACs) * float64(bits[i]) * a
	}
	return size, bitops
}

// Cost returns, for the assignment bits (one bit-width per layer), sens = Σ_B Sens_B[c_B(bits)]
// summed in block order, sizeBits = Σ_l Params_l·bits_l and bitops = Σ_l MACs_l·bits_l·ABits
// (ABits = 32 when 0). It errors when len(bits) ≠ len(Layers) or a bit-width is not a candidate.
// It does not call Validate: blocks must be well formed.
func (p *Problem) Cost(bits []int) (sens, sizeBits, bitops float64, err error) {
	if len(bits) != len(p.Layers) {
		return 0, 0, 0, fmt.Errorf("mixed: got %d bit-widths for %d layers", len(bits), len(p.Layers))
	}
	idx := make([]int, len(bits))
	for i, b := range bits {
		j := slices.Index(p.Candidates, b)
		if j < 0 {
			return 0, 0, 0, fmt.Errorf("mixed: layer %d (%q) bit-width %d is not a candidate %v", i, p.Layers[i].Name, b, p.Candidates)
		}
		idx[i] = j
	}
	k := len(p.Candidates)
	for bi, blk := range p.Blocks {
		c := 0
		for _, l := range blk.Layers {
			c = c*k + idx[l]
		}
		if c >= len(blk.Sens) {
			return 0, 0, 0, fmt.Errorf("mixed: block %d (%q) has only %d sensitivities, need index %d", bi, blk.Name, len(blk.Sens), c)
		}
		sens += blk.Sens[c]
	}
	sizeBits, bitops = p.resources(bits)
	return sens, sizeBits, bitops, nil
}

// Feasible reports whether bits is a valid assignment (see Cost) with Σ_l Params_l·bits_l ≤ MaxBits
// and, when MaxBitOPs > 0, Σ_l MACs_l·bits_l·ABits ≤ MaxBitOPs.
func (p *Problem) Feasible(bits []int) bool {
	_, size, bitops, err := p.Cost(bits)
	if err != nil {
		return false
	}
	return size <= p.MaxBits && (p.MaxBitOPs <= 0 || bitops <= p.MaxBitOPs)
}

// AverageBits returns the parameter-weighted mean bit-width Σ_l Params_l·bits_l / Σ_l Params_l
// (NaN when len(bits) ≠ len(Layers), 0 when there are no parameters).
func (p *Problem) AverageBits(bits []int) float64 {
	if len(bits) != len(p.Layers) {
		return math.NaN()
	}
	var num, den float64
	for i, l := range p.Layers {
		num += float64(l.Params) * float64(bits[i])
		den += float64(l.Params)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// BudgetFromAverageBits returns the size budget MaxBits = avg·Σ_l Params_l for an average weight
// bit-width avg (e.g. 4 for a "4-bit" model). It does not modify p; assign the result to p.MaxBits.
func (p *Problem) BudgetFromAverageBits(avg float64) float64 {
	var total float64
	for _, l := range p.Layers {
		total += float64(l.Params)
	}
	return avg * total
}

// evaluator is a compiled view of a validated problem over candidate indices ("genes").
type evaluator struct {
	p          *Problem
	k          int
	cand       []float64 // candidate bit-widths
	layerBlock []int     // block of each layer
	layerW     []int     // weight K^(m−1−j) of each layer's digit in its block's combination
	params     []float64
	macsA      []float64 // MACs·ABits
	maxBits    float64
	maxBitOPs  float64 // 0 = unconstrained
}

func newEvaluator(p *Problem) *evaluator {
	e := &evaluator{
		p:          p,
		k:          len(p.Candidates),
		cand:       make([]float64, len(p.Candidates)),
		layerBlock: make([]int, len(p.Layers)),
		layerW:     make([]int, len(p.Layers)),
		params:     make([]float64, len(p.Layers)),
		macsA:      make([]float64, len(p.Layers)),
		maxBits:    p.MaxBits,
		maxBitOPs:  p.MaxBitOPs,
	}
	for i, c := range p.Candidates {
		e.cand[i] = float64(c)
	}
	a := p.abits()
	for i, l := range p.Layers {
		e.params[i] = float64(l.Params)
		e.macsA[i] = float64(l.MACs) * a
	}
	for bi, b := range p.Blocks {
		w := 1
		for j := len(b.Layers) - 1; j >= 0; j-- {
			e.layerBlock[b.Layers[j]] = bi
			e.layerW[b.Layers[j]] = w
			w *= e.k
		}
	}
	return e
}

// individual is one individual: genes (candidate indices per layer), per-block combination indices and
// the cached costs. The combination indices memoise each block's cost: a block's sensitivity is
// Sens[combos[b]], and a one-step change of layer l moves combos[b] by ±layerW[l], so repair and
// improve price a move with two table look-ups.
type individual struct {
	genes  []uint8
	combos []int
	sens   float64
	size   float64
	bitops float64
}

func (e *evaluator) newInd() *individual {
	return &individual{genes: make([]uint8, len(e.p.Layers)), combos: make([]int, len(e.p.Blocks))}
}

func (x *individual) copyFrom(y *individual) {
	copy(x.genes, y.genes)
	copy(x.combos, y.combos)
	x.sens, x.size, x.bitops = y.sens, y.size, y.bitops
}

// score recomputes combos and all costs of x from its genes. The sensitivity is always the sum of
// the block table entries in block order, so equal assignments give bit-identical sensitivities.
func (e *evaluator) score(x *individual) {
	clear(x.combos)
	x.size, x.bitops = 0, 0
	for l, g := range x.genes {
		x.combos[e.layerBlock[l]] += int(g) * e.layerW[l]
		b := e.cand[g]
		x.size += e.params[l] * b
		x.bitops += e.macsA[l] * b
	}
	x.sens = e.sumSens(x.combos)
}

func (e *evaluator) sumSens(combos []int) float64 {
	var s float64
	for bi, c := range combos {
		s += e.p.Blocks[bi].Sens[c]
	}
	return s
}

func (e *evaluator) feasible(x *individual) bool {
	return x.size <= e.maxBits && (e.maxBitOPs <= 0 || x.bitops <= e.maxBitOPs)
}

// repair lowers genes of x until it is feasible (x's combos/size/bitops must be current and are
// updated incrementally; sens is not). It reports whether x changed. Each step lowers one layer by
// one candidate step, choosing the layer with the smallest sensitivity increase per unit of
// violated budget saved:
//
//	ratio_l = ΔSens_l / (ΔSize_l/MaxBits·[size violated] + ΔBitOPs_l/MaxBitOPs·[BitOPs violated])
//
// where ΔSens_l is the change of l's block sensitivity (the block's other layers held fixed).
// Layers that save nothing of a violated budget are skipped; ties are broken uniformly at random.
// Because the all-smallest assignment is feasible (Validate), such a layer always exists while x
// is infeasible, and the loop ends.
func (e *evaluator) repair(x *individual, rng *rand.Rand) bool {
	changed := false
	for !e.feasible(x) {
		sizeOver := x.size > e.maxBits
		opsOver := e.maxBitOPs > 0 && x.bitops > e.maxBitOPs
		best, ties := -1, 0
		var bestRatio float64
		for l, g := range x.genes {
			if g == 0 {
				continue
			}
			db := e.cand[g] - e.cand[g-1]
			var saved float64
			if sizeOver {
				saved += e.params[l] * db / e.maxBits
			}
			if opsOver {
				saved += e.macsA[l] * db / e.maxBitOPs
			}
			if saved <= 0 {
				continue
			}
			bi := e.layerBlock[l]
			sens := e.p.Blocks[bi].Sens
			c := x.combos[bi]
			ratio := (sens[c-e.layerW[l]] - sens[c]) / saved
			switch {
			case best < 0 || ratio < bestRatio:
				best, bestRatio, ties = l, ratio, 1
			case ratio == bestRatio:
				ties++
				if rng.IntN(ties) == 0 {
					best = l
				}
			}
		}
		if best < 0 { // unreachable for a validated problem
			panic("mixed: mixed-precision repair found no layer to lower")
		}
		g := x.genes[best]
		db := e.cand[g] - e.cand[g-1]
		x.genes[best] = g - 1
		x.combos[e.layerBlock[best]] -= e.layerW[best]
		x.size -= e.params[best] * db
		x.bitops -= e.macsA[best] * db
		changed = true
	}
	return changed
}

// improve is the inverse of repair, a greedy local step applied after it: while some one-step raise
// of a layer keeps x feasible and strictly lowers its block sensitivity, it applies the raise with
// the largest
//
//	ΔSens_l / (ΔSize_l/MaxBits + ΔBitOPs_l/MaxBitOPs·[MaxBitOPs > 0])
//
// (ties to the lowest layer index). x's combos/size/bitops must be current; sens is not updated.
// It reports whether x changed.
func (e *evaluator) improve(x *individual) bool {
	changed := false
	for {
		best := -1
		var bestRatio float64
		for l, g := range x.genes {
			if int(g) == e.k-1 {
				continue
			}
			db := e.cand[g+1] - e.cand[g]
			if x.size+e.params[l]*db > e.maxBits || (e.maxBitOPs > 0 && x.bitops+e.macsA[l]*db > e.maxBitOPs) {
				continue
			}
			bi := e.layerBlock[l]
			sens := e.p.Blocks[bi].Sens
			c := x.combos[bi]
			gain := sens[c] - sens[c+e.layerW[l]]
			if gain <= 0 {
				continue
			}
			used := e.params[l] * db / e.maxBits
			if e.maxBitOPs > 0 {
				used += e.macsA[l] * db / e.maxBitOPs
			}
			ratio := math.Inf(1)
			if used > 0 {
				ratio = gain / used
			}
			if best < 0 || ratio > bestRatio {
				best, bestRatio = l, ratio
			}
		}
		if best < 0 {
			return changed
		}
		g := x.genes[best]
		db := e.cand[g+1] - e.cand[g]
		x.genes[best] = g + 1
		x.combos[e.layerBlock[best]] += e.layerW[best]
		x.size += e.params[best] * db
		x.bitops += e.macsA[best] * db
		changed = true
	}
}

// fix makes x feasible (repair), then greedily improves it (improve), and refreshes its costs from
// scratch so the cached sensitivity carries no rounding from incremental updates.
func (e *evaluator) fix(x *individual, rng *rand.Rand) {
	repaired := e.repair(x, rng)
	improved := e.improve(x)
	if repaired || improved {
		e.score(x)
	}
}

// better reports whether a is preferred to b: lower sensitivity, then lower size, then the
// lexicographically smaller assignment.
func better(a, b *individual) bool {
	if a.sens != b.sens {
		return a.sens < b.sens
	}
	if a.size != b.size {
		return a.size < b.size
	}
	return slices.Compare(a.genes, b.genes) < 0
}

func (e *evaluator) result(x *individual, evals int) Result {
	bits := make([]int, len(x.genes))
	for i, g := range x.genes {
		bits[i] = e.p.Candidates[g]
	}
	sens, size, bitops, _ := e.p.Cost(bits)
	return Result{Bits: bits, Sensitivity: sens, SizeBits: size, BitOPs: bitops, Evaluations: evals}
}

// SearchGA minimises Σ_B Sens_B[c_B(b)] subject to the budgets of p with a seeded genetic algorithm
// over per-layer candidate indices (BRECQ §3.4). The initial population is the all-smallest
// assignment, the all-largest assignment and uniformly random assignments, each but the first
// then repaired and improved (below). Each generation copies the Elite best unchanged and fills
// the rest with children: two parents by tournament selection (best of Tournament uniform draws),
// uniform crossover (each gene from either parent with probability ½) with probability CrossoverP,
// otherwise a copy of the first parent; per-gene mutation with probability MutationP to a
// uniformly chosen different candidate; then repair and improve, so every individual is feasible.
// A child that duplicates an individual already in the next generation is re-bred (with one extra
// forced mutation) up to 3 times in all, then kept. The run stops after Generations generations or
// after 50 generations without a lower best sensitivity, and returns the best feasible assignment
// ever scored (ties: lower SizeBits, then lexicographically smaller Bits). Evaluations counts every
// scored assignment, including re-bred duplicates.
//
// Repair: while infeasible, lower by one candidate step the layer with the least
//
//	ΔSens_l / (ΔSize_l/MaxBits·[size over budget] + ΔBitOPs_l/MaxBitOPs·[BitOPs over budget])
//
// (block sensitivity increase per unit of violated budget saved; ties at random). Improve
// (Lamarckian, as in Chu & Beasley's knapsack GA): while some one-step raise keeps the assignment
// feasible and strictly lowers its block's sensitivity, apply the one with the largest decrease per
// unit of budget used.
//
// The run depends only on p and cfg: the same Seed gives the same result (math/rand/v2 PCG).
func SearchGA(p *Problem, cfg GAConfig) (Result, error) {
	if err := p.Validate(); err != nil {
		return Result{}, err
	}
	def := DefaultGAConfig()
	if cfg.Population <= 0 {
		cfg.Population = def.Population
	}
	if cfg.Generations <= 0 {
		cfg.Generations = def.Generations
	}
	if cfg.Tournament <= 0 {
		cfg.Tournament = def.Tournament
	}
	if cfg.MutationP == 0 {
		cfg.MutationP = 1 / float64(len(p.Layers))
	}
	switch {
	case cfg.Elite < 0 || cfg.Elite > cfg.Population:
		return Result{}, fmt.Errorf("mixed: GA Elite = %d must be in [0, Population = %d]", cfg.Elite, cfg.Population)
	case math.IsNaN(cfg.CrossoverP) || cfg.CrossoverP < 0 || cfg.CrossoverP > 1:
		return Result{}, fmt.Errorf("mixed: GA CrossoverP = %v must be in [0, 1]", cfg.CrossoverP)
	case math.IsNaN(cfg.MutationP) || cfg.MutationP < 0 || cfg.MutationP > 1:
		return Result{}, fmt.Errorf("mixed: GA MutationP = %v must be in [0, 1]", cfg.MutationP)
	}

	e := newEvaluator(p)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	k := e.k
	evals := 0
	best := e.newInd()
	haveBest := false
	consider := func(x *individual) {
		evals++
		if !haveBest || better(x, best) {
			best.copyFrom(x)
			haveBest = true
		}
	}

	pop := make([]*individual, cfg.Population)
	for i := range pop {
		x := e.newInd()
		switch i {
		case 0: // all smallest: genes already 0
		case 1: // all largest, then repaired
			for l := range x.genes {
				x.genes[l] = uint8(k - 1)
			}
		default:
			for l := range x.genes {
				x.genes[l] = uint8(rng.IntN(k))
			}
		}
		e.score(x)
		if i > 0 { // the all-smallest assignment enters as is: it is feasible (Validate)
			e.fix(x, rng)
		}
		consider(x)
		pop[i] = x
	}
	sortPop := func(pop []*individual) {
		slices.SortStableFunc(pop, func(a, b *individual) int {
			if better(a, b) {
				return -1
			}
			if better(b, a) {
				return 1
			}
			return 0
		})
	}
	sortPop(pop)

	next := make([]*individual, cfg.Population)
	for i := range next {
		next[i] = e.newInd()
	}
	tournament := func() *individual {
		w := pop[rng.IntN(len(pop))]
		for range cfg.Tournament - 1 {
			if c := pop[rng.IntN(len(pop))]; better(c, w) {
				w = c
			}
		}
		return w
	}
	seen := make(map[string]struct{}, cfg.Population)
	stall := 0
	for range cfg.Generations {
		prevBest := best.sens
		for i := range cfg.Elite {
			next[i].copyFrom(pop[i])
		}
		clear(seen)
		for i := range cfg.Elite {
			seen[string(next[i].genes)] = struct{}{}
		}
		for i := cfg.Elite; i < len(next); i++ {
			child := next[i]
			for try := range gaDuplicateTries {
				a := tournament()
				b := tournament()
				copy(child.genes, a.genes)
				if rng.Float64() < cfg.CrossoverP {
					for l := range child.genes {
						if rng.IntN(2) == 1 {
							child.genes[l] = b.genes[l]
						}
					}
				}
				if k > 1 {
					forced := -1
					if try > 0 {
						forced = rng.IntN(len(child.genes))
					}
					for l := range child.genes {
						if l == forced || rng.Float64() < cfg.MutationP {
							g := rng.IntN(k - 1)
							if g >= int(child.genes[l]) {
								g++
							}
							child.genes[l] = uint8(g)
						}
					}
				}
				e.score(child)
				e.fix(child, rng)
				consider(child)
				if _, dup := seen[string(child.genes)]; !dup {
					break
				}
			}
			seen[string(child.genes)] = struct{}{}
		}
		pop, next = next, pop
		sortPop(pop)
		if best.sens < prevBest {
			stall = 0
		} else if stall++; stall >= gaStallGenerations {
			break
		}
	}
	return e.result(best, evals), nil
}

// SearchExhaustive scores all K^n assignments (K candidates, n layers) and returns the one with the
// least Σ_B Sens_B[c_B(b)] among those meeting the budgets; ties go to the lowest SizeBits, then the
// lexicographically smallest Bits. It errors when K^n > 1e7.
func SearchExhaustive(p *Problem) (Result, error) {
	if err := p.Validate(); err != nil {
		return Result{}, err
	}
	e := newEvaluator(p)
	n, k := len(p.Layers), e.k
	total := 1
	for range n {
		if total > maxExhaustiveAssignments/k {
			return Result{}, fmt.Errorf("mixed: exhaustive search over %d^%d assignments exceeds %d", k, n, maxExhaustiveAssignments)
		}
		total *= k
	}
	x, best := e.newInd(), e.newInd()
	haveBest := false
	evals := 0
	for {
		// Odometer with the first layer most significant: lexicographic order, so the first of
		// equally good assignments found is the lexicographically smallest.
		e.score(x)
		evals++
		if e.feasible(x) && (!haveBest || x.sens < best.sens || (x.sens == best.sens && x.size < best.size)) {
			best.copyFrom(x)
			haveBest = true
		}
		l := n - 1
		for l >= 0 && int(x.genes[l]) == k-1 {
			x.genes[l] = 0
			l--
		}
		if l < 0 {
			break
		}
		x.genes[l]++
	}
	return e.result(best, evals), nil
}
