package infiniapay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

func effect(key string, amount int64) pipeline.Effect {
	return pipeline.Effect{Kind: infiniapay.KindRevenueShare, Subject: "RS/20250903/S1/USD",
		Attempt: 1, Key: key, Currency: "USD", Amount: amount, State: pipeline.EffectPlanned}
}

func TestSenderMapsStatuses(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	payable(r)
	s := infiniapay.RevenueShareSender{Client: r.client}

	e := effect("RS-OK", 500)
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending || out.Ref == "" {
		t.Fatalf("Send = %+v, %v; want pending with a reference", out, err)
	}
	for _, want := range []pipeline.OutcomeStatus{pipeline.OutcomePending, pipeline.OutcomePending, pipeline.OutcomeSucceeded} {
		if got, err := s.Query(ctx, e); err != nil || got.Status != want || got.Ref != out.Ref {
			t.Fatalf("Query = %+v, %v; want %v", got, err, want)
		}
	}
	if shares := r.fake.RevenueShares(); len(shares) != 1 || shares[0].SellerID != "S1" || shares[0].Amount != 500 || shares[0].Currency != "USD" {
		t.Fatalf("shares %+v", shares)
	}

	// Above the available share: FAILED with Infinia's reason, after the polls.
	r.fake.SetBalance("USD", 10_000_00)
	e = effect("RS-TOO-MUCH", 2_000_00)
	if out, err := s.Send(ctx, e); err != nil || out.Status != pipeline.OutcomePending {
		t.Fatalf("Send = %+v, %v", out, err)
	}
	var got pipeline.Outcome
	for i := 0; i < 3; i++ {
		got, _ = s.Query(ctx, e)
	}
	if got.Status != pipeline.OutcomeFailed || !strings.Contains(got.Reason, "available") {
		t.Fatalf("Query = %+v, want failed for the available share", got)
	}

	if got, err := s.Query(ctx, effect("RS-NEVER-SENT", 1)); err != nil || got.Status != pipeline.OutcomeNotFound {
		t.Fatalf("Query of an unknown key = %+v, %v; want not found", got, err)
	}

	// Final at once when the fake does not poll.
	r = newRig(t, infiniapaytest.Options{Polls: -1}, nil, nil)
	payable(r)
	s = infiniapay.RevenueShareSender{Client: r.client}
	if out, err := s.Send(ctx, effect("RS-1", 1)); err != nil || out.Status != pipeline.OutcomeSucceeded {
		t.Fatalf("Send = %+v, %v", out, err)
	}
	r.fake.SetBinding("S1", infiniapay.StatusFrozen)
	if out, err := s.Send(ctx, effect("RS-2", 1)); err != nil || out.Status != pipeline.OutcomeFailed || out.Reason != "seller not ACTIVE" {
		t.Fatalf("Send to a frozen seller = %+v, %v", out, err)
	}
}

func TestSenderUnknownOutcomeIsAnError(t *testing.T) {
	r := newRig(t, faults(fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Lost, Calls: []int{1}}), nil, nil)
	payable(r)
	s := infiniapay.RevenueShareSender{Client: r.client}
	e := effect("RS-LOST", 700)
	if _, err := s.Send(context.Background(), e); !errors.Is(err, infiniapay.ErrUnknownOutcome) {
		t.Fatalf("Send = %v, want ErrUnknownOutcome", err)
	}
	if got, err := s.Query(context.Background(), e); err != nil || got.Status != pipeline.OutcomePending {
		t.Fatalf("Query = %+v, %v", got, err)
	}
}

// TestSenderConfirmsRefusalsByQuery: a definite refusal is OutcomeFailed
// only when Infinia holds nothing under the key; if it does (a provider
// that refuses a repeated requestNo), its status is adopted - when it is
// our payout's: under the key, another amount is an answer we cannot use
// (adopted, it marked 9.99 paid where 1.00 went out).
func TestSenderConfirmsRefusalsByQuery(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	payable(r)
	s := infiniapay.RevenueShareSender{Client: r.client}
	if _, err := s.Send(ctx, effect("RS-1", 100)); err != nil {
		t.Fatal(err)
	}
	// The same request again: replayed, its status reported.
	if out, err := s.Send(ctx, effect("RS-1", 100)); err != nil || out.Status != pipeline.OutcomePending {
		t.Fatalf("Send again = %+v, %v; want the first request's status", out, err)
	}
	// Same key, other amount: the fake refuses with SYS-002, and what
	// it holds under RS-1 is not this payout.
	if out, err := s.Send(ctx, effect("RS-1", 999)); !errors.Is(err, infiniapay.ErrAnswer) {
		t.Fatalf("Send of another amount under RS-1 = %+v, %v; want an answer that cannot be used", out, err)
	}
	if r.fake.Paid("S1", "USD") != 100 {
		t.Fatal("paid twice")
	}

	// A refusal for a key Infinia does not hold: failed, with the code.
	refuse := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if !strings.HasSuffix(req.URL.Path, "revenue-sharing/request") {
				next.ServeHTTP(w, req)
				return
			}
			sig, _ := infiniapay.Sign(keys(t).InfiniaPrivate, "")
			json.NewEncoder(w).Encode(infiniapay.ResponseEnvelope{Code: infiniapay.CodeOutOfRange, Message: "amount out of range", Signature: sig})
		})
	}
	r = newRig(t, infiniapaytest.Options{}, refuse, nil)
	s = infiniapay.RevenueShareSender{Client: r.client}
	out, err := s.Send(ctx, effect("RS-9", 100))
	if err != nil || out.Status != pipeline.OutcomeFailed || out.Reason != "SYS-006 amount out of range" {
		t.Fatalf("Send = %+v, %v", out, err)
	}
}

func TestSenderFindsTheSeller(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	payable(r)
	s := infiniapay.RevenueShareSender{Client: r.client}
	for name, e := range map[string]pipeline.Effect{
		"wrong kind":     func() pipeline.Effect { e := effect("K1", 1); e.Kind = "unfreeze"; return e }(),
		"bad subject":    func() pipeline.Effect { e := effect("K2", 1); e.Subject = "S1"; return e }(),
		"currency clash": func() pipeline.Effect { e := effect("K3", 1); e.Currency = "EUR"; return e }(),
		"negative":       effect("K4", -1),
	} {
		if _, err := s.Send(ctx, e); err == nil {
			t.Errorf("%s: sent", name)
		}
	}
	if n := r.fake.Calls("revenue-sharing/request"); n != 0 {
		t.Fatalf("%d bad effects reached Infinia", n)
	}
	r.fake.SetBinding("SELLER-7", infiniapay.StatusActive)
	r.fake.SetAvailable("SELLER-7", "USD", 100)
	s.SellerID = func(context.Context, pipeline.Effect) (string, error) { return "SELLER-7", nil }
	if out, err := s.Send(ctx, effect("K5", 100)); err != nil || out.Status != pipeline.OutcomePending || r.fake.Paid("SELLER-7", "USD") != 100 {
		t.Fatalf("custom SellerID: %+v, %v", out, err)
	}
	if got, err := infiniapay.SubjectSeller("RS/20250903/S-1/USD", "USD"); err != nil || got != "S-1" {
		t.Fatalf("SubjectSeller = %q, %v", got, err)
	}
}

// TestSenderRefusedResendWaitsForInfiniaToKnowTheFirst: a revenue share
// sent again under its requestNo after an unknown outcome, refused by an
// Infinia that refuses repeats (PROVIDERS.md: replay or refusal, assumed
// either way) while its status query does not know the first send yet,
// was failed: its balance went to a new requestNo while the first could
// still pay (found by a review). It is pending now, asked again (never
// sent a third time), and failed once Infinia has not known the requestNo
// for KnownAfter. A first send refused is failed at once, as before.
func TestSenderRefusedResendWaitsForInfiniaToKnowTheFirst(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	var requests int
	lagging := refusingRepeats(t, &requests)
	r := newRig(t, infiniapaytest.Options{}, lagging, func(c *infiniapay.Config) { c.Now = func() time.Time { return now } })
	s := infiniapay.RevenueShareSender{Client: r.client, KnownAfter: 24 * time.Hour}
	e := effect("RS-1", 100)
	e.Sends = 1
	if out, err := s.Send(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed {
		t.Fatalf("a first send refused: %+v, %v; want failed", out, err)
	}
	e.Sends, e.State, e.LastError = 2, pipeline.EffectUnknown, "connection reset by peer"
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending || !strings.Contains(out.Reason, "duplicate requestNo") {
		t.Fatalf("sent again and refused: %+v, %v; want pending, the refusal named", out, err)
	}
	e.State, e.LastError = pipeline.EffectSent, out.Reason
	now = now.Add(time.Hour)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomePending || out.Reason != e.LastError {
		t.Fatalf("asked an hour later: %+v, %v; want still pending (not \"not found\": no third send)", out, err)
	}
	now = now.Add(24 * time.Hour)
	out, err = s.Query(ctx, e)
	if err != nil || out.Status != pipeline.OutcomeFailed || !strings.Contains(out.Reason, "never arrived") {
		t.Fatalf("asked a day later: %+v, %v; want failed", out, err)
	}
	if requests != 2 {
		t.Fatalf("%d requests sent, want 2", requests)
	}
}

// TestSenderRefusedResendMarkedByAnEarlierVersionWaits: a refused repeat
// recorded before the rule moved into pipeline carries the mark this
// package wrote then (the reasons below, copied from what it wrote: a
// refused repeat, and a too large one sent again). Asked about, it keeps
// its first refusal's time: pending, never sent a third time, until
// Infinia has not known it for KnownAfter since then; failed after.
func TestSenderRefusedResendMarkedByAnEarlierVersionWaits(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	r := newRig(t, infiniapaytest.Options{}, nil, func(c *infiniapay.Config) { c.Now = func() time.Time { return now } })
	payable(r)
	s := infiniapay.RevenueShareSender{Client: r.client, KnownAfter: 24 * time.Hour}
	for _, lastError := range []string{
		"Infinia refused requestNo RS-OLD sent again after an unknown outcome (SYS-005 duplicate requestNo) and does not know it: the first send may yet show (refused sent again, requestNo unknown since 2026-11-24T03:00:00Z)",
		"revenue share to seller S1 (Infinia id LLLL) not sent, too large for Infinia: request too large; requestNo RS-OLD was sent before with an unknown outcome and Infinia does not know it: the first send may yet show (refused sent again, requestNo unknown since 2026-11-24T03:00:00Z)",
	} {
		e := effect("RS-OLD", 100)
		e.Sends, e.State, e.LastError = 2, pipeline.EffectSent, lastError
		now = time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC).Add(23 * time.Hour)
		if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomePending || out.Reason != e.LastError {
			t.Fatalf("asked 23h after the old mark: %+v, %v; want pending, its reason kept", out, err)
		}
		now = now.Add(2 * time.Hour)
		if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed || !strings.HasPrefix(out.Reason, e.LastError+"; Infinia still does not know it 25h0m0s later") {
			t.Fatalf("asked 25h after the old mark: %+v, %v; want failed", out, err)
		}
	}
	if n := r.fake.Calls(infiniapay.APIRevenueShare); n != 0 {
		t.Fatalf("%d revenue shares sent, want none", n)
	}
}

// TestSenderUnpublishedCodeIsNotARefusal: a revenue share answered with a
// code Infinia does not publish (not SUC-200, not SYS-001..SYS-008) was
// read as a definite refusal, and failed at once on a status query that
// did not know the requestNo yet: its balance was then paid under a new
// requestNo while the first could still pay. It waits as a refused repeat
// does (pending, never sent again by Query), failed once Infinia has not
// known it for KnownAfter; a published refusal (SYS-006) still fails at
// once.
func TestSenderUnpublishedCodeIsNotARefusal(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	code := "SYS-009"
	var requests int
	lagging := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			sig, _ := infiniapay.Sign(keys(t).InfiniaPrivate, "")
			switch {
			case strings.HasSuffix(req.URL.Path, "revenue-sharing/request"):
				requests++
				json.NewEncoder(w).Encode(infiniapay.ResponseEnvelope{Code: code, Message: "request timed out", Signature: sig})
			case strings.HasSuffix(req.URL.Path, "revenue-sharing/query"):
				json.NewEncoder(w).Encode(infiniapay.ResponseEnvelope{Code: infiniapay.CodeNotFound, Message: "no such request", Signature: sig})
			default:
				next.ServeHTTP(w, req)
			}
		})
	}
	r := newRig(t, infiniapaytest.Options{}, lagging, func(c *infiniapay.Config) { c.Now = func() time.Time { return now } })
	s := infiniapay.RevenueShareSender{Client: r.client, KnownAfter: 24 * time.Hour}
	e := effect("RS-1", 100)
	e.Sends = 1
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending || !strings.Contains(out.Reason, "SYS-009 request timed out") {
		t.Fatalf("a first send answered SYS-009: %+v, %v; want pending, the answer named", out, err)
	}
	e.State, e.LastError = pipeline.EffectSent, out.Reason
	now = now.Add(time.Hour)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomePending {
		t.Fatalf("asked an hour later: %+v, %v; want still pending, not sent again", out, err)
	}
	now = now.Add(24 * time.Hour)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed {
		t.Fatalf("asked a day later: %+v, %v; want failed", out, err)
	}
	if requests != 1 {
		t.Fatalf("%d requests sent, want 1", requests)
	}

	code = infiniapay.CodeOutOfRange
	if out, err := s.Send(ctx, effect("RS-2", 100)); err != nil || out.Status != pipeline.OutcomeFailed {
		t.Fatalf("a first send refused with SYS-006: %+v, %v; want failed", out, err)
	}
}

// TestSenderFailedResendIsConfirmedByQuery: a revenue share sent again
// under its requestNo after an unknown outcome, answered SUC-200 with
// status FAILED ("duplicate requestNo": an Infinia that refuses a repeat
// in the answer's status rather than with a code) while its status query
// does not know the first send yet, was failed at once: its balance went
// to a new requestNo while the first could still pay it (found by a
// review). A FAILED answer to a repeat is confirmed by the status query
// as a refusal is: unknown there, it waits (pending) for KnownAfter; a
// first send answered FAILED is failed at once, as before.
func TestSenderFailedResendIsConfirmedByQuery(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	k := keys(t)
	var requests, queries int
	lagging := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			var env infiniapay.ResponseEnvelope
			switch {
			case strings.HasSuffix(req.URL.Path, "revenue-sharing/request"):
				requests++
				data := `{"requestNo":"RS-1","sellerId":"S1","currency":"USD","amount":"1.00","status":"FAILED","failReason":"duplicate requestNo"}`
				env.Code, env.Message = infiniapay.CodeSuccess, "success"
				env.ResponseData, _ = infiniapay.Encrypt(k.PlatformPublic, []byte(data), 117)
			case strings.HasSuffix(req.URL.Path, "revenue-sharing/query"):
				queries++
				env.Code, env.Message = infiniapay.CodeNotFound, "no such request"
			default:
				next.ServeHTTP(w, req)
				return
			}
			env.Signature, _ = infiniapay.Sign(k.InfiniaPrivate, env.ResponseData)
			json.NewEncoder(w).Encode(env)
		})
	}
	r := newRig(t, infiniapaytest.Options{}, lagging, func(c *infiniapay.Config) { c.Now = func() time.Time { return now } })
	s := infiniapay.RevenueShareSender{Client: r.client, KnownAfter: 24 * time.Hour}
	e := effect("RS-1", 100)
	e.Sends = 1
	if out, err := s.Send(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed || queries != 0 {
		t.Fatalf("a first send answered FAILED: %+v, %v (%d queries); want failed at once", out, err, queries)
	}
	e.Sends, e.State, e.LastError = 2, pipeline.EffectUnknown, "connection reset by peer"
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending || !strings.Contains(out.Reason, "duplicate requestNo") {
		t.Fatalf("sent again and answered FAILED, the first unknown to the query: %+v, %v; want pending, the answer named", out, err)
	}
	e.State, e.LastError = pipeline.EffectSent, out.Reason
	now = now.Add(25 * time.Hour)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed {
		t.Fatalf("asked a day later: %+v, %v; want failed", out, err)
	}
	if requests != 2 {
		t.Fatalf("%d requests sent, want 2", requests)
	}
}

// TestSenderTooLargeIsNotSentNotUnknown: a revenue share whose request is
// too large for Infinia (ErrTooLarge) was sent nothing, yet its error left
// it unknown: every run asked about it, found it never arrived and "sent"
// it again as large, for ever. A first send is failed at once, its reason
// naming the seller and the size; a send again after an unknown outcome
// waits (the first may have arrived) and is never sent a third time.
func TestSenderTooLargeIsNotSentNotUnknown(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	var requests int
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.HasSuffix(req.URL.Path, "revenue-sharing/request") {
				requests++
			}
			next.ServeHTTP(w, req)
		})
	}
	r := newRig(t, infiniapaytest.Options{}, count, func(c *infiniapay.Config) { c.Now = func() time.Time { return now } })
	payable(r)
	long := strings.Repeat("L", 3000) // an Infinia seller id no request can carry
	s := infiniapay.RevenueShareSender{Client: r.client, KnownAfter: 24 * time.Hour,
		SellerID: func(context.Context, pipeline.Effect) (string, error) { return long, nil }}
	e := effect("RS-BIG", 100)
	e.Sends = 1
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomeFailed || !out.NotTaken {
		t.Fatalf("Send of a request too large = %+v, %v; want failed, not taken (nothing sent), not an error (unknown)", out, err)
	}
	for _, want := range []string{"seller S1", "not sent", "too large", "characters", "at most 2048"} {
		if !strings.Contains(out.Reason, want) {
			t.Errorf("reason %q does not say %q", out.Reason, want)
		}
	}
	if len(out.Reason) > 1000 {
		t.Errorf("reason of %d bytes: the seller id is not clipped", len(out.Reason))
	}

	// Sent again after an unknown outcome: the first may have arrived.
	e.Sends, e.State, e.LastError = 2, pipeline.EffectUnknown, "connection reset by peer"
	out, err = s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending || !strings.Contains(out.Reason, "too large") {
		t.Fatalf("sent again, too large: %+v, %v; want pending, the size named", out, err)
	}
	e.State, e.LastError = pipeline.EffectSent, out.Reason
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomePending {
		t.Fatalf("asked later: %+v, %v; want still pending (not \"not found\": no third send)", out, err)
	}
	now = now.Add(25 * time.Hour)
	if out, err := s.Query(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed {
		t.Fatalf("asked a day later: %+v, %v; want failed", out, err)
	}
	if requests != 0 {
		t.Fatalf("%d revenue-sharing requests reached Infinia, want 0", requests)
	}
}

// TestTooLargeQueryConcernsItsSeller: a binding or available-share query
// too large to send (a seller id too long) concerns that seller alone:
// the distribute stage holds the seller for a person and pays the others.
// Unclassified, it stopped the stage for every seller, every run.
func TestTooLargeQueryConcernsItsSeller(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	api := infiniapay.StageAPIOf(r.client)
	long := strings.Repeat("L", 3000)
	if _, err := api.BindingStatus(ctx, "ABQ-1", long); !errors.Is(err, infiniapay.ErrTooLarge) || !pipeline.SubjectOnly(err) {
		t.Fatalf("binding query of a seller id too long: %v; want ErrTooLarge, of the seller alone", err)
	}
	if _, err := api.AvailableShare(ctx, "RSA-1", long, "USD"); !errors.Is(err, infiniapay.ErrTooLarge) || !pipeline.SubjectOnly(err) {
		t.Fatalf("available share query of a seller id too long: %v; want ErrTooLarge, of the seller alone", err)
	}
}

// TestSenderSaysWhatWasNotTaken: a revenue share Infinia answered "retry
// later" (SYS-008) to the end of the retries, or refused as a request,
// moved no money: the sender says so (pipeline.ErrNotTaken,
// Outcome.NotTaken), and the run's new money movements do not count it.
// One whose answer was lost may have been taken.
func TestSenderSaysWhatWasNotTaken(t *testing.T) {
	ctx := context.Background()
	answer := func(w http.ResponseWriter, code, msg string) {
		sig, _ := infiniapay.Sign(keys(t).InfiniaPrivate, "")
		json.NewEncoder(w).Encode(infiniapay.ResponseEnvelope{Code: code, Message: msg, Signature: sig})
	}
	code := infiniapay.CodeUnavailable
	refusing := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.HasSuffix(req.URL.Path, "revenue-sharing/request") {
				answer(w, code, "refused")
				return
			}
			next.ServeHTTP(w, req)
		})
	}
	r := newRig(t, infiniapaytest.Options{}, refusing, func(c *infiniapay.Config) { c.MaxRetries = 2 })
	s := infiniapay.RevenueShareSender{Client: r.client}
	e := effect("RS-LATER", 100)
	e.Sends = 1
	if _, err := s.Send(ctx, e); !errors.Is(err, pipeline.ErrNotTaken) || !strings.Contains(err.Error(), "SYS-008") {
		t.Fatalf("SYS-008 to the end: %v; want an error that says it was not taken, with Infinia's code", err)
	}
	code = infiniapay.CodeOutOfRange
	if out, err := s.Send(ctx, e); err != nil || out.Status != pipeline.OutcomeFailed || !out.NotTaken {
		t.Fatalf("SYS-006: %+v, %v; want failed, not taken", out, err)
	}

	r = newRig(t, faults(fault.Rule{Endpoint: "revenue-sharing/request", Kind: fault.Lost, Calls: []int{1}}), nil, nil)
	payable(r)
	s = infiniapay.RevenueShareSender{Client: r.client}
	if _, err := s.Send(ctx, effect("RS-LOST", 100)); !errors.Is(err, infiniapay.ErrUnknownOutcome) || errors.Is(err, pipeline.ErrNotTaken) {
		t.Fatalf("answer lost: %v; want unknown, which may have been taken", err)
	}
	if out, err := s.Send(ctx, effect("RS-OK", 100)); err != nil || out.NotTaken {
		t.Fatalf("taken: %+v, %v", out, err)
	}
}

// TestSenderRefusedResendPastInfiniasMemoryIsHeld: a revenue share sent
// again after an unknown outcome and refused, whose requestNo Infinia
// does not know, waits KnownAfter and is then failed: its balance goes
// out under a new requestNo. Asked only weeks later (the date not resumed
// meanwhile), "not known" no longer says the first send never arrived:
// Infinia may have paid it and forgotten it. Past Memory, Query answers
// an error wrapping pipeline.ErrPastMemory, naming the requestNo and its
// age, and nothing is failed or sent.
func TestSenderRefusedResendPastInfiniasMemoryIsHeld(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	var requests int
	forgetting := refusingRepeats(t, &requests)
	r := newRig(t, infiniapaytest.Options{}, forgetting, func(c *infiniapay.Config) { c.Now = func() time.Time { return now } })
	s := infiniapay.RevenueShareSender{Client: r.client, KnownAfter: 24 * time.Hour, Memory: 30 * 24 * time.Hour}
	e := effect("RS-OLD", 100)
	e.Sends, e.State, e.LastError, e.Planned = 2, pipeline.EffectUnknown, "connection reset by peer", now.Add(-time.Hour)
	out, err := s.Send(ctx, e)
	if err != nil || out.Status != pipeline.OutcomePending {
		t.Fatalf("sent again and refused: %+v, %v; want pending", out, err)
	}
	e.State, e.LastError = pipeline.EffectSent, out.Reason
	now = now.Add(45 * 24 * time.Hour)
	out, err = s.Query(ctx, e)
	if !errors.Is(err, pipeline.ErrPastMemory) || !pipeline.SubjectOnly(err) || !strings.Contains(err.Error(), "RS-OLD") || !strings.Contains(err.Error(), "45d1h ago") {
		t.Fatalf("asked 45 days later: %+v, %v; want ErrPastMemory naming the requestNo and its age (not failed)", out, err)
	}
	if requests != 1 {
		t.Fatalf("%d requests sent, want 1", requests)
	}
}

// refusingRepeats is an Infinia that refuses every revenue share sent
// ("duplicate requestNo", counted in *requests) and whose status query
// knows none ("not found"): what a refused repeat meets while Infinia
// does not know the first send yet, or has forgotten it.
func refusingRepeats(t *testing.T, requests *int) func(http.Handler) http.Handler {
	answer := func(w http.ResponseWriter, code, msg string) {
		sig, _ := infiniapay.Sign(keys(t).InfiniaPrivate, "")
		json.NewEncoder(w).Encode(infiniapay.ResponseEnvelope{Code: code, Message: msg, Signature: sig})
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			switch {
			case strings.HasSuffix(req.URL.Path, "revenue-sharing/request"):
				*requests++
				answer(w, infiniapay.CodeInvalidParameter, "duplicate requestNo")
			case strings.HasSuffix(req.URL.Path, "revenue-sharing/query"):
				answer(w, infiniapay.CodeNotFound, "no such request")
			default:
				next.ServeHTTP(w, req)
			}
		})
	}
}
