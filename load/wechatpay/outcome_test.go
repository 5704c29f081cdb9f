package wechatpay

import (
	"errors"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestAFinishedOrderMustShowThePlatformsLine: the published schema makes
// an order's receivers optional (wechatpay-go v0.2.20,
// services/profitsharing/models.go, OrdersEntity: `json:"receivers,omitempty"`).
// A FINISHED answer without the platform's line - no lines at all, or the
// seller's rest alone - says nothing of the commission; it was taken as a
// distribution succeeded (found by a review). It is now an answer that
// cannot be used; a PROCESSING one without lines is still pending.
func TestAFinishedOrderMustShowThePlatformsLine(t *testing.T) {
	t.Parallel()
	const sub = "1900000109"
	e := pipeline.Effect{ID: 1, Kind: KindDistribution, Key: "WX20250903O1A1", Currency: "CNY", Amount: 300}
	rest := ShareResult{Type: TypeMerchantID, Account: sub, Amount: 700, Result: ResultSuccess}
	for name, tc := range map[string]struct {
		state     string
		receivers []ShareResult
		unusable  bool
	}{
		"FINISHED, no lines":          {StateFinished, nil, true},
		"FINISHED, the rest alone":    {StateFinished, []ShareResult{rest}, true},
		"PROCESSING, no lines yet":    {StateProcessing, nil, false},
		"FINISHED, the platform paid": {StateFinished, []ShareResult{rest, {Type: TypeMerchantID, Account: "1900000001", Amount: 300, Result: ResultSuccess}}, false},
	} {
		o := Order{SubMchID: sub, TransactionID: "4208450740201411110007820472", OutOrderNo: e.Key,
			OrderID: "3008450740201411110007820472", State: tc.state, Receivers: tc.receivers}
		out, err := outcome(e, sub, o)
		switch {
		case tc.unusable && !errors.Is(err, ErrAnswer):
			t.Errorf("%s: %+v, %v; want an answer that cannot be used", name, out, err)
		case !tc.unusable && err != nil:
			t.Errorf("%s: %v", name, err)
		case name == "PROCESSING, no lines yet" && out.Status != pipeline.OutcomePending:
			t.Errorf("%s: %+v, want pending", name, out)
		case name == "FINISHED, the platform paid" && out.Status != pipeline.OutcomeSucceeded:
			t.Errorf("%s: %+v, want succeeded", name, out)
		}
	}
}

// TestADistributionIsSucceededOnlyWhenFinishedWithEveryLineOfOurAmountPaid:
// a line still pending keeps a FINISHED order pending (never taken as
// paid); a line CLOSED fails it; lines that move more or less than the
// effect's amount are not the request we sent, whatever the state.
func TestADistributionIsSucceededOnlyWhenFinishedWithEveryLineOfOurAmountPaid(t *testing.T) {
	t.Parallel()
	const sub, platform = "1900000109", "1900000001"
	e := pipeline.Effect{ID: 1, Kind: KindDistribution, Key: "WX20250903O1A1", Currency: "CNY", Amount: 300}
	rest := ShareResult{Type: TypeMerchantID, Account: sub, Amount: 700, Result: ResultSuccess}
	line := func(amount int64, result string) ShareResult {
		return ShareResult{Type: TypeMerchantID, Account: platform, Amount: amount, Result: result}
	}
	for name, tc := range map[string]struct {
		state     string
		receivers []ShareResult
		want      pipeline.OutcomeStatus
		unusable  bool
	}{
		"FINISHED, paid":                {StateFinished, []ShareResult{rest, line(300, ResultSuccess)}, pipeline.OutcomeSucceeded, false},
		"FINISHED, one line pending":    {StateFinished, []ShareResult{rest, line(200, ResultSuccess), line(100, ResultPending)}, pipeline.OutcomePending, false},
		"FINISHED, one line closed":     {StateFinished, []ShareResult{rest, line(200, ResultSuccess), line(100, ResultClosed)}, pipeline.OutcomeFailed, false},
		"PROCESSING, paid so far":       {StateProcessing, []ShareResult{rest, line(300, ResultSuccess)}, pipeline.OutcomePending, false},
		"FINISHED, a unit more moved":   {StateFinished, []ShareResult{rest, line(301, ResultSuccess)}, 0, true},
		"FINISHED, a unit less moved":   {StateFinished, []ShareResult{rest, line(299, ResultSuccess)}, 0, true},
		"PROCESSING, a unit more moved": {StateProcessing, []ShareResult{rest, line(301, ResultPending)}, 0, true},
	} {
		o := Order{SubMchID: sub, TransactionID: "4208450740201411110007820472", OutOrderNo: e.Key,
			OrderID: "3008450740201411110007820472", State: tc.state, Receivers: tc.receivers}
		out, err := outcome(e, sub, o)
		switch {
		case tc.unusable:
			if !errors.Is(err, ErrAnswer) {
				t.Errorf("%s: %+v, %v; want an answer that cannot be used", name, out, err)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case out.Status != tc.want:
			t.Errorf("%s: %+v, want status %v", name, out, tc.want)
		}
	}
}
