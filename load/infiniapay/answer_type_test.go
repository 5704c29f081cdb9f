package infiniapay_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

// TestAnAnswerOfAnotherShapeConcernsItsSubjectAlone: an answer that
// opened and verified but whose data is not the JSON we read (a field of
// another type: an amount as a number, a status as an object; or not
// JSON at all) was a malformed envelope, which concerns every request:
// one seller's odd answer stopped the stage for all of them (found by a
// review). It is an answer about that subject that cannot be used: the
// subject is held, the others go on; a revenue share's outcome stays
// unknown, for its status query.
func TestAnAnswerOfAnotherShapeConcernsItsSubjectAlone(t *testing.T) {
	ctx := context.Background()
	k := keys(t)
	for name, data := range map[string]string{
		"amount a number":  `{"requestNo":"RS-SHAPE","sellerId":"S1","currency":"USD","amount":5.00,"status":"SUCCESS"}`,
		"status an object": `{"requestNo":"RS-SHAPE","sellerId":"S1","currency":"USD","amount":"5.00","status":{"code":"SUCCESS"}}`,
		"not JSON":         `SUCCESS`,
	} {
		t.Run(name, func(t *testing.T) {
			swap := func(env *infiniapay.ResponseEnvelope) {
				env.ResponseData, _ = infiniapay.Encrypt(k.PlatformPublic, []byte(data), 117)
				env.Signature, _ = infiniapay.Sign(k.InfiniaPrivate, env.ResponseData)
			}
			r := newRig(t, infiniapaytest.Options{Polls: -1}, tamper("revenue-sharing/query", swap), nil)
			payable(r)
			s := infiniapay.RevenueShareSender{Client: r.client}
			e := effect("RS-SHAPE", 500)
			if _, err := s.Send(ctx, e); err != nil {
				t.Fatal(err)
			}
			e.State = pipeline.EffectUnknown
			out, err := s.Query(ctx, e)
			if !errors.Is(err, infiniapay.ErrAnswer) || !infiniapay.SubjectOnly(err) {
				t.Fatalf("Query = %+v, %v; want an answer that cannot be used, about this payout alone", out, err)
			}
			if strings.Contains(err.Error(), "5.00") {
				t.Fatalf("the answer's data is quoted: %v", err)
			}
		})
	}
	// The same on a seller's query: its binding, held alone.
	swap := func(env *infiniapay.ResponseEnvelope) {
		env.ResponseData, _ = infiniapay.Encrypt(k.PlatformPublic, []byte(`{"sellerId":"S1","status":1}`), 117)
		env.Signature, _ = infiniapay.Sign(k.InfiniaPrivate, env.ResponseData)
	}
	r := newRig(t, infiniapaytest.Options{}, tamper("account-binding/query", swap), nil)
	r.fake.SetBinding("S1", infiniapay.StatusActive)
	if _, err := r.client.BindingStatus(ctx, "ABQ-1", "S1"); !errors.Is(err, infiniapay.ErrAnswer) || !infiniapay.SubjectOnly(err) {
		t.Fatalf("binding status 1: %v; want an answer that cannot be used, about this seller alone", err)
	}
}

// TestInfiniasTextIsKeptAsTheLedgerCanStoreIt: a NUL in Infinia's words
// (JSON's "\u0000": a revenue share's reference or failReason, an upload's
// errorFileUrl) went as it was to the ledger, whose PostgreSQL refuses
// it: recording that one payout's outcome failed and stopped the stage,
// on every run. The reference was not clipped at all. What is kept holds
// no NUL; an errorFileUrl with one is an answer about that file that
// cannot be used.
func TestInfiniasTextIsKeptAsTheLedgerCanStoreIt(t *testing.T) {
	ctx := context.Background()
	k := keys(t)
	long := strings.Repeat("R", 10_000)
	for name, data := range map[string]string{
		"failReason": `{"requestNo":"RS-NUL","sellerId":"S1","currency":"USD","amount":"5.00","status":"FAILED","reference":"IRS1","failReason":"no\u0000pe"}`,
		"reference":  `{"requestNo":"RS-NUL","sellerId":"S1","currency":"USD","amount":"5.00","status":"SUCCESS","reference":"IRS\u00001"}`,
		"long":       `{"requestNo":"RS-NUL","sellerId":"S1","currency":"USD","amount":"5.00","status":"SUCCESS","reference":"` + long + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			swap := func(env *infiniapay.ResponseEnvelope) {
				env.ResponseData, _ = infiniapay.Encrypt(k.PlatformPublic, []byte(data), 117)
				env.Signature, _ = infiniapay.Sign(k.InfiniaPrivate, env.ResponseData)
			}
			r := newRig(t, infiniapaytest.Options{Polls: -1}, tamper("revenue-sharing/request", swap), nil)
			payable(r)
			s := infiniapay.RevenueShareSender{Client: r.client}
			out, err := s.Send(ctx, effect("RS-NUL", 500))
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsRune(out.Ref+out.Reason, 0) || len(out.Ref) > 300 {
				t.Fatalf("outcome %q / %q (%d bytes): the ledger cannot store it", clipped(out.Ref), out.Reason, len(out.Ref))
			}
		})
	}
	swap := func(env *infiniapay.ResponseEnvelope) {
		data := `{"status":"FAILED","requestNo":"TDU-1","errorFileUrl":"https://infinia.example/e\u0000rrors/1.csv"}`
		env.Code, env.Message = infiniapay.CodeSuccess, "success"
		env.ResponseData, _ = infiniapay.Encrypt(k.PlatformPublic, []byte(data), 117)
		env.Signature, _ = infiniapay.Sign(k.InfiniaPrivate, env.ResponseData)
	}
	r := newRig(t, infiniapaytest.Options{}, tamper("trade-details/query", swap), nil)
	if u, err := r.client.UploadStatus(ctx, "TDU-1"); !errors.Is(err, infiniapay.ErrAnswer) {
		t.Fatalf("errorFileUrl with a NUL: %+v, %v; want an answer that cannot be used", u, err)
	}
}

func clipped(s string) string { return s[:min(len(s), 40)] }

// TestAmountsWithZerosBeyondTheCurrencysDecimals: Infinia writing an
// amount with more decimals than the currency has, all of them zeros (yen
// as "1000.00", as its CNH examples write two), was refused as an answer
// that cannot be used: every such revenue share stayed unknown for good,
// never recorded paid, and every balance in the currency held its
// payouts. The value is exact: read as it is. A decimal that is not zero
// is still refused, never rounded.
func TestAmountsWithZerosBeyondTheCurrencysDecimals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		wrote string
		want  int64
		ok    bool
	}{
		{"12345.00", 12345, true},
		{"12345.0", 12345, true},
		{"12345", 12345, true},
		{"12345.50", 0, false},
		{"12345.", 0, false},
		{".00", 0, false},
	} {
		r := newRig(t, infiniapaytest.Options{}, reseal(t, "balance/query", func(m map[string]string) { m["available"] = tc.wrote }), nil)
		r.fake.SetBalance("JPY", 12345)
		b, err := r.client.Balance(ctx, "BAL-1", "JPY")
		if tc.ok != (err == nil) || b.Available != tc.want {
			t.Errorf("balance %q JPY: %+v, %v; want %d, ok %v", tc.wrote, b, err, tc.want, tc.ok)
		}
	}
	// A revenue share of 1000 yen answered "1000.00" is that payout.
	r := newRig(t, infiniapaytest.Options{Polls: -1}, reseal(t, "revenue-sharing/request", func(m map[string]string) { m["amount"] += ".00" }), nil)
	r.fake.SetBinding("S1", infiniapay.StatusActive)
	r.fake.SetBalance("JPY", 5000)
	r.fake.SetAvailable("S1", "JPY", 5000)
	e := pipeline.Effect{Kind: infiniapay.KindRevenueShare, Subject: "RS/20250903/S1/JPY", Attempt: 1, Key: "RS-JPY", Currency: "JPY", Amount: 1000}
	if out, err := (infiniapay.RevenueShareSender{Client: r.client}).Send(ctx, e); err != nil || out.Status != pipeline.OutcomeSucceeded {
		t.Fatalf("1000 JPY answered \"1000.00\": %+v, %v; want succeeded", out, err)
	}
}
