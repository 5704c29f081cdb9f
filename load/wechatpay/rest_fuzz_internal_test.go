package wechatpay

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// restOrder is a FINISHED distribution of 300 to the platform's
// receiver, the rest released to the seller in lines of amounts with
// results.
func restOrder(sub string, amounts []int64, results []string) Order {
	o := Order{SubMchID: sub, TransactionID: "T1", OutOrderNo: "K1", State: StateFinished,
		Receivers: []ShareResult{{Type: TypeMerchantID, Account: "1900000001", Amount: 300, Result: ResultSuccess}}}
	for i, v := range amounts {
		o.Receivers = append(o.Receivers, ShareResult{Type: TypeMerchantID, Account: sub, Amount: v, Result: results[i]})
	}
	return o
}

// FuzzOutcomeRest: a distribution's answer is taken (outcome) only when
// the lines releasing the rest to the seller add up within int64
// (math/big), and the stage then reads from it (restOf, releaseOf) the
// release those SUCCESS lines add up to, exactly: added as int64, lines
// of 2^63-1, 2^63-1 and 2 wrapped to 0, the release read as missing.
func FuzzOutcomeRest(f *testing.F) {
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(2), uint8(0), int64(100))
	f.Add(int64(60), int64(40), int64(0), uint8(0), int64(100))
	f.Add(int64(60), int64(39), int64(5), uint8(0x12), int64(100))
	f.Add(int64(math.MaxInt64), int64(1), int64(0), uint8(0x24), int64(0))
	f.Fuzz(func(t *testing.T, a, b, c int64, results uint8, share int64) {
		if a < 0 || b < 0 || c < 0 || share < 0 {
			t.Skip() // readOrder refuses a negative line; a share is not negative
		}
		const sub = "1900000109"
		words := []string{ResultSuccess, ResultPending, ResultClosed, ResultSuccess}
		amounts := []int64{a, b, c}
		res := make([]string, 3)
		all, freed := new(big.Int), new(big.Int)
		for i, v := range amounts {
			res[i] = words[(results>>(2*i))&3]
			all.Add(all, big.NewInt(v))
			if res[i] == ResultSuccess {
				freed.Add(freed, big.NewInt(v))
			}
		}
		o := restOrder(sub, amounts, res)
		e := pipeline.Effect{ID: 1, Kind: KindDistribution, Key: "K1", Currency: "CNY", Amount: 300}
		_, err := outcome(e, sub, o)
		if !all.IsInt64() {
			if !errors.Is(err, ErrAnswer) {
				t.Fatalf("rest lines %d, %d, %d (%s in all) taken: %v", a, b, c, all, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("rest lines %d, %d, %d: %v", a, b, c, err)
		}
		st := OrderStatus{State: o.State, Lines: []OrderLine{{Platform: true, Result: ResultClosed}}}
		for i, v := range amounts {
			st.Lines = append(st.Lines, OrderLine{Rest: true, Result: res[i], Amount: v})
		}
		enough := freed.Cmp(big.NewInt(share)) >= 0
		state, got, _ := restOf(st, share)
		if got != freed.Int64() || (state == restReleased) != enough {
			t.Fatalf("rest lines %d, %d, %d %q, share %d: restOf %d, released %d; math/big %s", a, b, c, res, share, state, got, freed)
		}
		if _, rel := releaseOf(st, share); (rel == released) != enough {
			t.Fatalf("rest lines %d, %d, %d %q, share %d: releaseOf %d (math/big %s)", a, b, c, res, share, rel, freed)
		}
	})
}

// TestDistributionReleasingPastInt64IsNoAnswer: WeChat Pay's answer to a
// distribution whose lines releasing the rest to the seller add up past
// int64 cannot be used: taken, the stage added them as int64, and lines
// of 2^63-1, 2^63-1 and 2 released 0 (found by FuzzOutcomeRest).
func TestDistributionReleasingPastInt64IsNoAnswer(t *testing.T) {
	const sub = "1900000109"
	e := pipeline.Effect{ID: 1, Kind: KindDistribution, Key: "K1", Currency: "CNY", Amount: 300}
	o := restOrder(sub, []int64{math.MaxInt64, math.MaxInt64, 2}, []string{ResultSuccess, ResultSuccess, ResultSuccess})
	if out, err := outcome(e, sub, o); !errors.Is(err, ErrAnswer) {
		t.Fatalf("taken: %+v, %v", out, err)
	}
	o = restOrder(sub, []int64{math.MaxInt64 - 2, 2}, []string{ResultSuccess, ResultSuccess})
	if out, err := outcome(e, sub, o); err != nil || out.Status != pipeline.OutcomeSucceeded {
		t.Fatalf("rest lines within int64: %+v, %v", out, err)
	}
}
