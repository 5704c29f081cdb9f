package infiniapay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

// reseal rewrites the decrypted answer data of the fake on one API with
// edit, then encrypts and signs it again as Infinia would (a genuine,
// verifiable answer whose content differs).
func reseal(t *testing.T, api string, edit func(map[string]string)) func(http.Handler) http.Handler {
	k := keys(t)
	return tamper(api, func(env *infiniapay.ResponseEnvelope) {
		if env.ResponseData == "" {
			return
		}
		plain, err := infiniapay.Decrypt(k.PlatformPrivate, env.ResponseData)
		if err != nil {
			t.Errorf("reseal: %v", err)
			return
		}
		var m map[string]string
		json.Unmarshal(plain, &m)
		edit(m)
		plain, _ = json.Marshal(m)
		env.ResponseData, _ = infiniapay.Encrypt(k.PlatformPublic, plain, 117)
		env.Signature, _ = infiniapay.Sign(k.InfiniaPrivate, env.ResponseData)
	})
}

// TestARevenueShareAnswerAboutAnotherSellerIsNotOurs: a signed answer to
// our revenue share that echoes another seller was taken as this seller's
// payout, succeeded (found by a review): it is an answer we cannot use,
// and the outcome stays unknown, for a status query.
func TestARevenueShareAnswerAboutAnotherSellerIsNotOurs(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{Polls: -1}, reseal(t, "revenue-sharing/request", func(m map[string]string) {
		m["sellerId"] = "S-SOMEONE-ELSE"
	}), nil)
	payable(r)
	s := infiniapay.RevenueShareSender{Client: r.client}
	out, err := s.Send(ctx, effect("RS-OTHER-SELLER", 500))
	if err == nil && out.Status == pipeline.OutcomeSucceeded {
		t.Fatalf("answer about seller S-SOMEONE-ELSE adopted as S1's payout: %+v", out)
	}
	if !errors.Is(err, infiniapay.ErrAnswer) || !errors.Is(err, infiniapay.ErrUnknownOutcome) {
		t.Fatalf("want ErrAnswer, outcome unknown; got %+v, %v", out, err)
	}
}

// TestARevenueShareStatusAboutAnotherPayoutIsNotOurs: the same on the
// status query (the resolution of an unknown outcome): another seller,
// currency or amount is not our payout's answer.
func TestARevenueShareStatusAboutAnotherPayoutIsNotOurs(t *testing.T) {
	ctx := context.Background()
	for name, edit := range map[string]func(map[string]string){
		"seller":   func(m map[string]string) { m["sellerId"] = "S-SOMEONE-ELSE" },
		"currency": func(m map[string]string) { m["currency"] = "HKD" },
		"amount":   func(m map[string]string) { m["amount"] = "0.01" },
		// An amount echoed without its currency was not compared at all
		// (found by a review): it is read in the request's currency.
		"amount without currency": func(m map[string]string) { delete(m, "currency"); m["amount"] = "0.01" },
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, infiniapaytest.Options{Polls: -1}, reseal(t, "revenue-sharing/query", edit), nil)
			payable(r)
			s := infiniapay.RevenueShareSender{Client: r.client}
			e := effect("RS-Q-"+name, 500)
			if _, err := s.Send(ctx, e); err != nil {
				t.Fatal(err)
			}
			e.State = pipeline.EffectUnknown
			out, err := s.Query(ctx, e)
			if err == nil || !errors.Is(err, infiniapay.ErrAnswer) {
				t.Fatalf("status answer about another %s adopted as S1's 5.00 USD payout: %+v, %v", name, out, err)
			}
		})
	}
	// Our own amount without the currency is our payout's answer.
	r := newRig(t, infiniapaytest.Options{Polls: -1}, reseal(t, "revenue-sharing/query", func(m map[string]string) { delete(m, "currency") }), nil)
	payable(r)
	s := infiniapay.RevenueShareSender{Client: r.client}
	e := effect("RS-Q-OURS", 500)
	if _, err := s.Send(ctx, e); err != nil {
		t.Fatal(err)
	}
	e.State = pipeline.EffectUnknown
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomeSucceeded {
		t.Fatalf("status answer of 5.00 without a currency: %+v, %v; want our payout, succeeded", out, err)
	}
}

// TestAnAnswerForAnotherRequestNoIsNotOurs: every request carries its
// requestNo, and the published upload status answer echoes it. An answer
// that echoes another one answers another request: the binding request's
// redirect link (another seller's binding, handed to this seller), the
// balance's and the available share's figures. Only the upload status and
// the revenue share compared it (found by a review); each is now an answer
// that cannot be used, about its subject alone, and our own requestNo
// echoed is taken. The binding query's is not compared
// (TestABindingAnswerIsOursByItsSeller).
func TestAnAnswerForAnotherRequestNoIsNotOurs(t *testing.T) {
	ctx := context.Background()
	calls := map[string]func(*infiniapay.Client) error{
		"account-binding/request": func(c *infiniapay.Client) error {
			_, err := c.BindAccount(ctx, infiniapay.BindRequest{RequestNo: "ABR-ECHO-1", SellerID: "S1", SellerCertNo: "C1", SellerName: "Seller One",
				StoreName: "Store One", StoreURL: "https://store.example/s1", EntityType: "Corporate", Country: "CHN", Currency: "CNY"})
			return err
		},
		"balance/query": func(c *infiniapay.Client) error {
			_, err := c.Balance(ctx, "BQ-ECHO-1", "USD")
			return err
		},
		"revenue-sharing/available": func(c *infiniapay.Client) error {
			_, err := c.AvailableShare(ctx, "RSA-ECHO-1", "S1", "USD")
			return err
		},
	}
	for api, call := range calls {
		t.Run(api, func(t *testing.T) {
			other := func(endpoint string, m map[string]string) {
				if endpoint == api {
					m["requestNo"] = "SOMEONE-ELSES-1"
				}
			}
			r := newRig(t, infiniapaytest.Options{Answer: other}, nil, nil)
			payable(r)
			err := call(r.client)
			if !errors.Is(err, infiniapay.ErrAnswer) || !infiniapay.SubjectOnly(err) {
				t.Fatalf("answer for requestNo SOMEONE-ELSES-1 taken as ours: %v; want ErrAnswer, about this request alone", err)
			}
			// The fake echoes the requestNo asked, as the published
			// upload status answer does: taken.
			echoed := ""
			r = newRig(t, infiniapaytest.Options{}, reseal(t, api, func(m map[string]string) { echoed = m["requestNo"] }), nil)
			payable(r)
			if err := call(r.client); err != nil || echoed == "" {
				t.Fatalf("our own requestNo echoed (%q): %v", echoed, err)
			}
		})
	}
}

// TestABindingAnswerIsOursByItsSeller: the binding query is asked under a
// requestNo of its own, and its answer may echo the binding request's
// number (the seller status notification carries that one): an answer
// echoing another requestNo is taken, so long as it names our seller. One
// naming another seller is refused, about this seller alone: another
// seller's ACTIVE planned this seller's payouts.
func TestABindingAnswerIsOursByItsSeller(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		field, value string
		ours         bool
	}{{"requestNo", "ABR-20250903-0001", true}, {"sellerId", "S2", false}} {
		r := newRig(t, infiniapaytest.Options{Answer: func(endpoint string, m map[string]string) {
			if endpoint == "account-binding/query" {
				m[c.field] = c.value
			}
		}}, nil, nil)
		payable(r)
		b, err := r.client.BindingStatus(ctx, "ABQ-ECHO-1", "S1")
		if c.ours && (err != nil || b.Status == "") {
			t.Errorf("a binding answer echoing %s %q: %+v, %v; want it taken", c.field, c.value, b, err)
		}
		if !c.ours && (!errors.Is(err, infiniapay.ErrAnswer) || !infiniapay.SubjectOnly(err)) {
			t.Errorf("a binding answer echoing %s %q taken as ours: %+v, %v", c.field, c.value, b, err)
		}
	}
}
