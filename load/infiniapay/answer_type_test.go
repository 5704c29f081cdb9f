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
