package transform

import (
	"math"
	"math/big"
	"slices"
	"testing"
)

func TestAllocate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		total   int64
		weights []int64
		want    []int64
	}{
		// 100 * 1/3 = 33.33 each, 1 left: equal remainders, lowest index.
		{"thirds", 100, []int64{1, 1, 1}, []int64{34, 33, 33}},
		// 200/3 = 66.67 each, 2 left: indexes 0 and 1.
		{"thirds of 200", 200, []int64{1, 1, 1}, []int64{67, 67, 66}},
		// exact: 60, 30, 10.
		{"exact", 100, []int64{6, 3, 1}, []int64{60, 30, 10}},
		// 10 * (1,2,3)/6 = 1.667, 3.333, 5: floor 1,3,5 (9), 1 left to the largest remainder (index 0: 4/6).
		{"largest remainder wins", 10, []int64{1, 2, 3}, []int64{2, 3, 5}},
		// 7 * (5,0,5)/10 = 3.5, 0, 3.5: 1 left, tie between 0 and 2 -> index 0; the zero weight gets 0.
		{"zero weight gets zero", 7, []int64{5, 0, 5}, []int64{4, 0, 3}},
		// 1 * (1,1,1,1)/4: all 0.25, the single unit to index 0.
		{"one unit", 1, []int64{1, 1, 1, 1}, []int64{1, 0, 0, 0}},
		// 5 * (0,0,3)/3 = 0, 0, 5.
		{"single positive weight", 5, []int64{0, 0, 3}, []int64{0, 0, 5}},
		{"zero total", 0, []int64{1, 2}, []int64{0, 0}},
		{"zero total zero weights", 0, []int64{0, 0}, []int64{0, 0}},
		{"one party", 12345, []int64{7}, []int64{12345}},
		// Huge values: MaxInt64 * w / W in 128 bits. (MaxInt64) / 2 = 4611686018427387903.5 each,
		// 1 left, tie -> index 0.
		{"max total halves", math.MaxInt64, []int64{1, 1}, []int64{4611686018427387904, 4611686018427387903}},
		// Weights near MaxInt64 whose sum fits: MaxInt64-1 and 1 of total 10:
		// 10*(2^63-2)/(2^63-1) = 9.99999..., 10/(2^63-1) = 0.000...; floor 9 and 0, 1 left to index 0.
		{"huge weights", 10, []int64{math.MaxInt64 - 1, 1}, []int64{10, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Allocate(tt.total, tt.weights)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Allocate(%d, %v) = %v, want %v", tt.total, tt.weights, got, tt.want)
			}
			checkAllocation(t, tt.total, tt.weights, got)
		})
	}
}

func TestAllocateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		total   int64
		weights []int64
	}{
		{"negative total", -1, []int64{1}},
		{"no weights", 10, nil},
		{"no weights, zero total", 0, []int64{}},
		{"negative weight", 10, []int64{1, -1}},
		{"all zero", 10, []int64{0, 0}},
		{"weights overflow", 10, []int64{math.MaxInt64, 1}},
	}
	for _, tt := range tests {
		if got, err := Allocate(tt.total, tt.weights); err == nil {
			t.Errorf("%s: Allocate(%d, %v) = %v, want error", tt.name, tt.total, tt.weights, got)
		}
	}
}

// checkAllocation checks the properties of a Hamilton allocation against an
// independent computation in big integers.
func checkAllocation(t *testing.T, total int64, weights, parts []int64) {
	t.Helper()
	if len(parts) != len(weights) {
		t.Fatalf("%d parts for %d weights", len(parts), len(weights))
	}
	W := new(big.Int)
	for _, w := range weights {
		W.Add(W, big.NewInt(w))
	}
	sum := new(big.Int)
	type rem struct {
		r     *big.Int
		index int
	}
	var got, rems []rem
	for i, p := range parts {
		sum.Add(sum, big.NewInt(p))
		if p < 0 {
			t.Errorf("part %d is negative: %d", i, p)
		}
		if weights[i] == 0 && p != 0 {
			t.Errorf("zero weight %d got %d", i, p)
		}
		if W.Sign() == 0 {
			continue
		}
		// exact share = total*w/W = q + r/W; the part is q or q+1.
		q, r := new(big.Int).QuoRem(new(big.Int).Mul(big.NewInt(total), big.NewInt(weights[i])), W, new(big.Int))
		switch d := new(big.Int).Sub(big.NewInt(p), q); {
		case d.Sign() == 0:
		case d.Cmp(big.NewInt(1)) == 0 && r.Sign() > 0:
			got = append(got, rem{r, i})
		default:
			t.Errorf("part %d = %d, exact share %s + %s/%s", i, p, q, r, W)
		}
		rems = append(rems, rem{r, i})
	}
	if sum.Cmp(big.NewInt(total)) != 0 {
		t.Errorf("parts %v sum to %s, want %d", parts, sum, total)
	}
	// The extra units went to the largest remainders, lower index first.
	slices.SortStableFunc(rems, func(a, b rem) int { return b.r.Cmp(a.r) })
	var want []int
	for _, r := range rems[:len(got)] {
		want = append(want, r.index)
	}
	slices.Sort(want)
	var gotIdx []int
	for _, g := range got {
		gotIdx = append(gotIdx, g.index)
	}
	if !slices.Equal(gotIdx, want) {
		t.Errorf("extra units went to indexes %v, want %v", gotIdx, want)
	}
}
