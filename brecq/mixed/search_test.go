package mixed

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// handProblem is a 2-block problem for the hand-computed Cost check:
// block "ab" holds layers 0 (a) and 1 (b) with Sens[c] = 10·c + 1 for c = 3·i_a + i_b,
// block "c" holds layer 2 with Sens {3, 2, 1}.
func handProblem() *Problem {
	sens := make([]float64, 9)
	for c := range sens {
		sens[c] = 10*float64(c) + 1
	}
	return &Problem{
		Layers: []Layer{
			{Name: "a", Params: 10, MACs: 100},
			{Name: "b", Params: 20, MACs: 50},
			{Name: "c", Params: 5, MACs: 0},
		},
		Blocks: []Block{
			{Name: "ab", Layers: []int{0, 1}, Sens: sens},
			{Name: "c", Layers: []int{2}, Sens: []float64{3, 2, 1}},
		},
		Candidates: []int{2, 4, 8},
		MaxBits:    1e9,
		ABits:      8,
	}
}

func TestCostHand(t *testing.T) {
	p := handProblem()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	// bits (4, 8, 2): block ab digits (i_a, i_b) = (1, 2) → c = 1·3 + 2 = 5 → Sens 51 (the
	// reversed order would give c = 7 → 71); block c digit 0 → 3. Total 54.
	// size = 10·4 + 20·8 + 5·2 = 210; bitops = (100·4 + 50·8 + 0·2)·8 = 6400.
	sens, size, ops, err := p.Cost([]int{4, 8, 2})
	if err != nil {
		t.Fatal(err)
	}
	if sens != 54 || size != 210 || ops != 6400 {
		t.Errorf("Cost(4,8,2) = (%v, %v, %v), want (54, 210, 6400)", sens, size, ops)
	}
	// bits (8, 2, 8) with ABits 0 (→ 32): c = 2·3 + 0 = 6 → 61; block c digit 2 → 1. Total 62.
	// size = 80 + 40 + 40 = 160; bitops = (800 + 100)·32 = 28800.
	p.ABits = 0
	sens, size, ops, err = p.Cost([]int{8, 2, 8})
	if err != nil {
		t.Fatal(err)
	}
	if sens != 62 || size != 160 || ops != 28800 {
		t.Errorf("Cost(8,2,8) = (%v, %v, %v), want (62, 160, 28800)", sens, size, ops)
	}
	if got := p.AverageBits([]int{8, 2, 8}); got != 160.0/35 {
		t.Errorf("AverageBits = %v, want %v", got, 160.0/35)
	}
	if got := p.BudgetFromAverageBits(4); got != 140 {
		t.Errorf("BudgetFromAverageBits(4) = %v, want 140", got)
	}
	if _, _, _, err := p.Cost([]int{4, 3, 2}); err == nil {
		t.Error("Cost accepted a non-candidate bit-width")
	}
	if _, _, _, err := p.Cost([]int{4, 4}); err == nil {
		t.Error("Cost accepted a short assignment")
	}
	p.MaxBits = 160
	p.MaxBitOPs = 28800
	if !p.Feasible([]int{8, 2, 8}) {
		t.Error("Feasible(8,2,8) = false at exactly the budgets")
	}
	p.MaxBitOPs = 28799
	if p.Feasible([]int{8, 2, 8}) {
		t.Error("Feasible(8,2,8) = true over the BitOPs budget")
	}
}

// individualependent builds a problem of single-layer blocks with the given tables and params.
func individualependent(params []int64, tables [][]float64, maxBits float64) *Problem {
	p := &Problem{Candidates: []int{2, 4, 8}, MaxBits: maxBits}
	for i, t := range tables {
		p.Layers = append(p.Layers, Layer{Name: string(rune('a' + i)), Params: params[i]})
		p.Blocks = append(p.Blocks, Block{Name: string(rune('a' + i)), Layers: []int{i}, Sens: t})
	}
	return p
}

func TestExhaustiveHand(t *testing.T) {
	// Three layers of 10 weights, budget 140 bits → bit-widths summing to ≤ 14. Tables (2,4,8 bits):
	// a {100,10,0}, b {50,5,0}, c {10,1,0}. Feasible candidates near the budget:
	// (8,4,2) = 0+5+10 = 15, (4,4,4) = 16, (4,8,2) = 20, (8,2,4) = 51, (2,8,4) = 101 …; optimum (8,4,2).
	p := individualependent([]int64{10, 10, 10}, [][]float64{{100, 10, 0}, {50, 5, 0}, {10, 1, 0}}, 140)
	r, err := SearchExhaustive(p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Bits, []int{8, 4, 2}) || r.Sensitivity != 15 || r.SizeBits != 140 || r.Evaluations != 27 {
		t.Errorf("got %+v, want bits [8 4 2], sens 15, size 140, 27 evaluations", r)
	}

	// Ties: two layers with tables {1,0,0}, budget 60 → sum ≤ 6: (2,4) and (4,2) both give 1 at
	// size 60; the lexicographically smaller (2,4) must win.
	p = individualependent([]int64{10, 10}, [][]float64{{1, 0, 0}, {1, 0, 0}}, 60)
	if r, err = SearchExhaustive(p); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Bits, []int{2, 4}) || r.Sensitivity != 1 {
		t.Errorf("tie by lex: got %+v, want bits [2 4], sens 1", r)
	}
	// All-zero sensitivity: every assignment ties, the smallest size (all 2 bits) must win.
	p = individualependent([]int64{10, 10}, [][]float64{{0, 0, 0}, {0, 0, 0}}, 1000)
	if r, err = SearchExhaustive(p); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Bits, []int{2, 2}) {
		t.Errorf("tie by size: got %v, want [2 2]", r.Bits)
	}

	// A joint 2-layer block with interaction: Sens is 0 only when both layers are at 8 bits,
	// otherwise 5 − (number of layers at 8 bits). Plus an independent layer c {9, 3, 0}.
	// Params a=b=c=10, budget 200 → sum ≤ 20. (8,8,4) = 0+3 = 3 at size 200;
	// (8,4,8) = 4+0 = 4; (4,8,8) = 4; so the optimum is (8,8,4).
	joint := make([]float64, 9)
	for c := range joint {
		ia, ib := c/3, c%3
		n8 := 0
		if ia == 2 {
			n8++
		}
		if ib == 2 {
			n8++
		}
		joint[c] = float64(5 - n8)
		if n8 == 2 {
			joint[c] = 0
		}
	}
	p = &Problem{
		Layers:     []Layer{{Name: "a", Params: 10}, {Name: "b", Params: 10}, {Name: "c", Params: 10}},
		Blocks:     []Block{{Name: "ab", Layers: []int{0, 1}, Sens: joint}, {Name: "c", Layers: []int{2}, Sens: []float64{9, 3, 0}}},
		Candidates: []int{2, 4, 8},
		MaxBits:    200,
	}
	if r, err = SearchExhaustive(p); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Bits, []int{8, 8, 4}) || r.Sensitivity != 3 {
		t.Errorf("joint block: got %+v, want bits [8 8 4], sens 3", r)
	}
	if r, err = SearchGA(p, DefaultGAConfig()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Bits, []int{8, 8, 4}) {
		t.Errorf("GA on joint block: got %+v, want bits [8 8 4]", r)
	}
}

// randomProblem draws 3–4 blocks of 1–3 layers over {2,4,8}. A layer's sensitivity at candidate
// index i is w_l·4^(2−i) (lower bits cost more), a block's table is the sum over its layers times a
// random interaction factor in [1, 1.3]; params in [1, 1000], MACs in [1, 1e5]. The size budget is
// uniform between the smallest and the largest model; with bitops, a BitOPs budget likewise.
func randomProblem(rng *rand.Rand, bitops bool) *Problem {
	p := &Problem{Candidates: []int{2, 4, 8}}
	nb := 3 + rng.IntN(2)
	for b := range nb {
		m := 1 + rng.IntN(3)
		blk := Block{Name: string(rune('A' + b))}
		w := make([]float64, m)
		for j := range m {
			blk.Layers = append(blk.Layers, len(p.Layers))
			p.Layers = append(p.Layers, Layer{
				Name:   blk.Name + string(rune('0'+j)),
				Params: 1 + rng.Int64N(1000),
				MACs:   1 + rng.Int64N(100000),
			})
			w[j] = rng.Float64()
		}
		combos := int(math.Pow(3, float64(m)))
		blk.Sens = make([]float64, combos)
		for c := range combos {
			s, rest := 0.0, c
			for j := m - 1; j >= 0; j-- {
				s += w[j] * math.Pow(4, float64(2-rest%3))
				rest /= 3
			}
			blk.Sens[c] = s * (1 + 0.3*rng.Float64())
		}
		p.Blocks = append(p.Blocks, blk)
	}
	var minSize, maxSize, minOps, maxOps float64
	for _, l := range p.Layers {
		minSize += 2 * float64(l.Params)
		maxSize += 8 * float64(l.Params)
		minOps += 2 * float64(l.MACs) * 32
		maxOps += 8 * float64(l.MACs) * 32
	}
	p.MaxBits = math.Floor(minSize + rng.Float64()*(maxSize-minSize))
	if bitops {
		p.MaxBitOPs = math.Floor(minOps + rng.Float64()*(maxOps-minOps))
	}
	return p
}

func TestGAMatchesExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const cases = 40
	for i := range cases {
		p := randomProblem(rng, i%2 == 1)
		ex, err := SearchExhaustive(p)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		cfg := DefaultGAConfig()
		cfg.Seed = uint64(i)
		ga, err := SearchGA(p, cfg)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if ga.Sensitivity != ex.Sensitivity {
			t.Errorf("case %d (%d layers, bitops %v): GA sens %v bits %v, exhaustive sens %v bits %v",
				i, len(p.Layers), p.MaxBitOPs > 0, ga.Sensitivity, ga.Bits, ex.Sensitivity, ex.Bits)
		}
		// Budgets, checked independently of the search's own cached costs.
		var size, ops float64
		for l, b := range ga.Bits {
			size += float64(p.Layers[l].Params * int64(b))
			ops += float64(p.Layers[l].MACs * int64(b) * 32)
		}
		if size != ga.SizeBits || size > p.MaxBits {
			t.Errorf("case %d: GA size %v (reported %v) vs budget %v", i, size, ga.SizeBits, p.MaxBits)
		}
		if ops != ga.BitOPs || (p.MaxBitOPs > 0 && ops > p.MaxBitOPs) {
			t.Errorf("case %d: GA bitops %v (reported %v) vs budget %v", i, ops, ga.BitOPs, p.MaxBitOPs)
		}
		if ex.SizeBits > p.MaxBits || (p.MaxBitOPs > 0 && ex.BitOPs > p.MaxBitOPs) {
			t.Errorf("case %d: exhaustive result over budget: %+v", i, ex)
		}
		if !p.Feasible(ga.Bits) {
			t.Errorf("case %d: GA result %v not Feasible", i, ga.Bits)
		}
	}
}

func TestGASameSeed(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 5 {
		p := randomProblem(rng, i%2 == 0)
		cfg := DefaultGAConfig()
		cfg.Seed = 42
		a, err := SearchGA(p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := SearchGA(p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Bits, b.Bits) || a.Sensitivity != b.Sensitivity || a.Evaluations != b.Evaluations {
			t.Errorf("problem %d: same seed gave %+v and %+v", i, a, b)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	ok := func() *Problem {
		p := handProblem()
		p.MaxBits = 200 // smallest model: 2·(10+20+5) = 70 bits
		return p
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid problem rejected: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(p *Problem)
		want   []string
	}{
		{"budget below smallest", func(p *Problem) { p.MaxBits = 69 }, []string{"below the smallest", "69", "70"}},
		// smallest BitOPs: (100+50)·2·8 = 2400
		{"bitops below smallest", func(p *Problem) { p.MaxBitOPs = 2399 }, []string{"below the smallest", "2399", "2400"}},
		{"wrong len(Sens)", func(p *Problem) { p.Blocks[1].Sens = []float64{1, 2} }, []string{"len(Sens)"}},
		{"layer in two blocks", func(p *Problem) {
			p.Blocks[1].Layers = []int{2, 1}
			p.Blocks[1].Sens = make([]float64, 9)
		}, []string{"both block"}},
		{"layer in no block", func(p *Problem) { p.Blocks = p.Blocks[:1] }, []string{"no block"}},
		{"candidate 0", func(p *Problem) { p.Candidates = []int{0, 4, 8} }, []string{"bit-width 0"}},
		{"candidate 9", func(p *Problem) { p.Candidates = []int{2, 4, 9} }, []string{"bit-width 9"}},
		{"not ascending", func(p *Problem) { p.Candidates = []int{2, 8, 4} }, []string{"ascending"}},
		{"NaN sens", func(p *Problem) { p.Blocks[1].Sens[0] = math.NaN() }, []string{"Sens[0]"}},
		{"negative sens", func(p *Problem) { p.Blocks[0].Sens[4] = -1 }, []string{"Sens[4]"}},
	}
	for _, c := range cases {
		p := ok()
		c.mutate(p)
		err := p.Validate()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
		if _, gaErr := SearchGA(p, DefaultGAConfig()); gaErr == nil {
			t.Errorf("%s: SearchGA accepted an invalid problem", c.name)
		}
	}
}

func TestExhaustiveTooLarge(t *testing.T) {
	// 3^15 ≈ 1.4e7 > 1e7 assignments.
	tables := make([][]float64, 15)
	params := make([]int64, 15)
	for i := range tables {
		tables[i] = []float64{2, 1, 0}
		params[i] = 1
	}
	if _, err := SearchExhaustive(individualependent(params, tables, 1e6)); err == nil {
		t.Error("SearchExhaustive accepted 3^15 assignments")
	}
}
