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
