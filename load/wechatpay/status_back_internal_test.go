package wechatpay

import (
	"fmt"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// TestCompareOrderStatusGoneBack: a distribution or unfreeze the ledger
// recorded final (on WeChat Pay's FINISHED answer: succeeded and applied,
// or failed and distributed again under a new out_order_no) that WeChat
// Pay now answers PROCESSING, or whose line is PENDING again, is a state
// that went back, for a person: it was reported as an expected timing row
// ("still processing"), which needs no one (exit 0), while a failed
// distribution WeChat Pay is still processing may move the money twice.
func TestCompareOrderStatusGoneBack(t *testing.T) {
	for _, state := range []pipeline.EffectState{pipeline.EffectSucceeded, pipeline.EffectFailed} {
		for _, kind := range []string{KindDistribution, KindUnfreeze} {
			a := pipeline.Attempt{Effect: pipeline.Effect{Kind: kind, Key: "K1", Currency: "CNY", Amount: 300, State: state},
				Item: pipeline.ChannelItem{OrderNo: "O1", SellerID: "S1", Account: "1900000109", TransactionID: "T1", Currency: "CNY", SellerShare: 9700}}
			amount := int64(300)
			if kind == KindUnfreeze {
				amount = 9700
			}
			for _, st := range []OrderStatus{
				{State: StateProcessing},
				{State: StateProcessing, Lines: []OrderLine{{Platform: kind == KindDistribution, Rest: kind == KindUnfreeze, Result: ResultPending, Amount: amount}}},
				{State: StateFinished, Lines: []OrderLine{{Platform: kind == KindDistribution, Rest: kind == KindUnfreeze, Result: ResultPending, Amount: amount}}},
			} {
				ms := compareOrder(a, st, 0)
				if len(ms) != 1 || ms[0].Expected || ms[0].Category != pipeline.MismatchStatus || !strings.Contains(ms[0].Detail, "went back") {
					t.Errorf("%s %s, WeChat Pay %+v: %+v; want one unexpected status mismatch saying it went back", state, kind, st, ms)
				}
			}
		}
	}
	// In flight on both sides: timing, expected.
	a := pipeline.Attempt{Effect: pipeline.Effect{Kind: KindDistribution, Key: "K1", Currency: "CNY", Amount: 300, State: pipeline.EffectSent},
		Item: pipeline.ChannelItem{OrderNo: "O1", SellerID: "S1", Account: "1900000109", TransactionID: "T1", Currency: "CNY"}}
	if ms := compareOrder(a, OrderStatus{State: StateProcessing}, 0); len(ms) != 1 || !ms[0].Expected || ms[0].Category != pipeline.MismatchTiming {
		t.Fatalf("in flight, PROCESSING: %+v; want an expected timing row", ms)
	}
}

// TestCompareOrderLineTwice: WeChat Pay's FINISHED order listing the
// platform receiver's line twice (or an unfreeze's line to the seller
// twice) moved twice what was asked: the matcher compared the first line
// alone and found nothing, while the sender refuses such an answer
// (outcome: the lines add up to more than the effect).
func TestCompareOrderLineTwice(t *testing.T) {
	for _, kind := range []string{KindDistribution, KindUnfreeze} {
		a := pipeline.Attempt{Effect: pipeline.Effect{Kind: kind, Key: "K1", Currency: "CNY", Amount: 300, State: pipeline.EffectSucceeded},
			Item: pipeline.ChannelItem{OrderNo: "O1", SellerID: "S1", Account: "1900000109", TransactionID: "T1", Currency: "CNY", SellerShare: 9700}}
		amount := int64(300)
		if kind == KindUnfreeze {
			amount = 9700
		}
		line := OrderLine{Platform: kind == KindDistribution, Rest: kind == KindUnfreeze, Result: ResultSuccess, Amount: amount}
		if ms := compareOrder(a, OrderStatus{State: StateFinished, Lines: []OrderLine{line}}, 0); len(ms) != 0 {
			t.Fatalf("%s, one line: %+v; want none", kind, ms)
		}
		ms := compareOrder(a, OrderStatus{State: StateFinished, Lines: []OrderLine{line, line}}, 0)
		if len(ms) != 1 || ms[0].Expected || ms[0].Category != pipeline.MismatchAmount || ms[0].Theirs != pipeline.Minor(2*amount) {
			t.Errorf("%s, the line twice: %+v; want an amount mismatch of %d", kind, ms, 2*amount)
		}
	}
}

// TestARefusalOfOneRequestConcernsItsTransactionAlone: the engine's error
// about one request (pipeline.ErrRefused: a distribution WeChat Pay
// answered before, with its order id, that its order query does not know
// now) concerns that transaction alone: held for a person, the others go
// on. Not in subjectError, it stopped the stage for every transaction.
func TestARefusalOfOneRequestConcernsItsTransactionAlone(t *testing.T) {
	if err := fmt.Errorf("distribution WX/20261123/O1 key K1: %w", pipeline.ErrRefused); !subjectError(err) {
		t.Fatalf("%v: not the transaction's alone", err)
	}
}
