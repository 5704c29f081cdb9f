package transform

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"

	"github.com/settlekit/settle/pipeline"
)

// Allocate splits total (>= 0 minor units) among len(weights) parties in
// proportion to weights (each >= 0) by the largest-remainder (Hamilton)
// method: each part first gets floor(total * w / sum(w)); the units left
// over go one each to the parts with the largest remainders, the lower index
// first among equal remainders.
//
// The parts always sum exactly to total; none is negative; a zero weight
// gets zero; each part is within one unit of its exact proportional share.
// Products are computed in 128 bits, so no total or weight is too large; only
// a sum of weights beyond int64 is an error (wrapping pipeline.ErrOverflow).
// Weights must not be empty, and must not all be zero unless total is zero.
func Allocate(total int64, weights []int64) ([]int64, error) {
	if total < 0 {
		return nil, fmt.Errorf("allocate %d: negative total", total)
	}
	if len(weights) == 0 {
		return nil, fmt.Errorf("allocate %d: no weights", total)
	}
	var sum int64
	for i, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("allocate %d: weight %d is negative (%d)", total, i, w)
		}
		var err error
		if sum, err = pipeline.Add(sum, w); err != nil {
			return nil, fmt.Errorf("allocate %d: sum of %d weights: %w", total, len(weights), err)
		}
	}
	parts := make([]int64, len(weights))
	if total == 0 {
		return parts, nil
	}
	if sum == 0 {
		return nil, fmt.Errorf("allocate %d: all %d weights are zero", total, len(weights))
	}
	rems := make([]uint64, len(weights))
	left := total
	for i, w := range weights {
		// total*w < 2^63 * sum, so the high word is below sum and
		// Div64 cannot overflow; the quotient is at most total.
		hi, lo := bits.Mul64(uint64(total), uint64(w))
		q, r := bits.Div64(hi, lo, uint64(sum))
		parts[i], rems[i] = int64(q), r
		left -= int64(q)
	}
	// The remainders sum to left*sum and each is below sum, so more than
	// left of them are positive: a zero weight (remainder 0) never gets a
	// leftover unit, and left < len(weights).
	if left > 0 {
		order := make([]int, len(weights))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int {
			if c := cmp.Compare(rems[b], rems[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		for _, i := range order[:left] {
			parts[i]++
		}
	}
	return parts, nil
}
