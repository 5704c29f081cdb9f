package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
)

// TestSellersSyncOneBadAnswerStopsNoOther: one seller whose binding
// query answers something unusable (a status the client does not know)
// stopped `settle sellers sync` for every seller after it (found by a
// review); it is listed not refreshed, the others are, and sync ends 4.
func TestSellersSyncOneBadAnswerStopsNoOther(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, l := e.sellersDay()
	ctx := context.Background()
	for i, id := range []string{"S00001", "S00002"} {
		if err := l.SetBinding(ctx, pipeline.Binding{SellerID: id, ProviderSellerID: seed.InfiniaID(i + 1), Status: "PENDING", Source: "bind"}); err != nil {
			t.Fatal(err)
		}
	}
	sim.Infinia.SetBinding(seed.InfiniaID(1), "CLOSED") // unknown to us: ErrAnswer, for S00001 alone
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	out, code := e.settleSub(append([]string{"sellers", "sync"}, sim.Config.Args()...)...)
	b, _, _ := l.GetBinding(ctx, "S00002")
	if b.Status != "ACTIVE" || code != 4 || !strings.Contains(out, "NOT REFRESHED") || !strings.Contains(out, "seller S00001") {
		t.Fatalf("exit %d, S00002 %s; want 4, S00002 ACTIVE and S00001 named not refreshed:\n%s", code, b.Status, out)
	}
}

// TestAWebhookWhoseRecordingFailedIsDealtWithWhenDeliveredAgain: a
// notification whose recording fails (a passing database error) is
// answered 500, and Infinia delivers it again. The delivery was marked
// seen first, so the repeat was answered SUCCESS with nothing recorded
// (found by a review); it is recorded now.
func TestAWebhookWhoseRecordingFailedIsDealtWithWhenDeliveredAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, l := e.sellersDay()
	ctx := context.Background()
	if err := l.SetBinding(ctx, pipeline.Binding{SellerID: "S00002", ProviderSellerID: seed.InfiniaID(2), Status: "PENDING", Source: "bind"}); err != nil {
		t.Fatal(err)
	}
	inf, err := newInfinia(infiniaParams{URL: sim.Config.InfiniaURL, AppID: sim.Config.AppID, PlatformID: sim.Config.PlatformID,
		KeyFile: sim.Config.OurKeyFile, PublicKeyFile: sim.Config.InfiniaPublicKeyFile, SFTPAddr: sim.Config.SFTPAddr,
		SFTPUser: sim.Config.SFTPUser, SFTPKey: sim.Config.SFTPKeyFile, KnownHosts: sim.Config.KnownHostsFile})
	if err != nil {
		t.Fatal(err)
	}
	h, err := bindingWebhook(l, inf)
	if err != nil {
		t.Fatal(err)
	}
	sim.Infinia.SetBinding(seed.InfiniaID(2), "FROZEN")
	// A passing database failure on the bindings table.
	e.db.MustExec(`ALTER TABLE settle.seller_bindings ADD CONSTRAINT review_fail CHECK (status <> 'FROZEN')`)
	body, err := sim.Infinia.Notification("WH-LOST", seed.InfiniaID(2), "FROZEN")
	if err != nil {
		t.Fatal(err)
	}
	deliver := func() int {
		// A fresh handler each time, as after a restart, or the same one: both lose it.
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := deliver(); code != http.StatusInternalServerError {
		t.Fatalf("first delivery: %d, want 500 (not recorded)", code)
	}
	e.db.MustExec(`ALTER TABLE settle.seller_bindings DROP CONSTRAINT review_fail`)
	code := deliver() // Infinia delivers again
	b, _, _ := l.GetBinding(ctx, "S00002")
	if b.Status != "FROZEN" {
		t.Fatalf("redelivery answered %d but the FROZEN status was never recorded (binding %+v)", code, b)
	}
}

// sellersDay seeds a small day of three sellers and starts the simulator;
// it returns the simulator and the migrated ledger (closed with the test).
func (e *env) sellersDay() (*paysim.Sim, *ledger.Ledger) {
	e.t.Helper()
	e.mustSettle("seed", "--date", testDate, "--orders", "20", "--sellers", "3")
	e.mustSettle("migrate")
	sim := e.sim(nil, 0, nil, 0)
	l, err := ledger.Open(context.Background(), e.url, "")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close() })
	return sim, l
}

// TestAForgedWebhookDoesNotSuppressTheRealOne: Infinia's notifications
// are unsigned in its documented example, and its requestNos guessable. A
// notification anyone made with the requestNo of Infinia's next, about a
// seller of ours in a status it did not have yet, had the binding query's
// answer recorded and the requestNo recorded as dealt with; Infinia's own
// notification of that requestNo, the seller frozen, was then answered
// SUCCESS, after a restart too, and the freeze never recorded (found by a
// review). The forgery is answered 503 and not recorded as dealt with; the
// real notification is confirmed and recorded.
func TestAForgedWebhookDoesNotSuppressTheRealOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim, l := e.sellersDay()
	ctx := context.Background()
	if err := l.SetBinding(ctx, pipeline.Binding{SellerID: "S00002", ProviderSellerID: seed.InfiniaID(2), Status: "PENDING", Source: "bind"}); err != nil {
		t.Fatal(err)
	}
	inf, err := newInfinia(infiniaParams{URL: sim.Config.InfiniaURL, AppID: sim.Config.AppID, PlatformID: sim.Config.PlatformID,
		KeyFile: sim.Config.OurKeyFile, PublicKeyFile: sim.Config.InfiniaPublicKeyFile, SFTPAddr: sim.Config.SFTPAddr,
		SFTPUser: sim.Config.SFTPUser, SFTPKey: sim.Config.SFTPKeyFile, KnownHosts: sim.Config.KnownHostsFile})
	if err != nil {
		t.Fatal(err)
	}
	h, err := bindingWebhook(l, inf)
	if err != nil {
		t.Fatal(err)
	}
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	// Unsigned, encrypted with our public key: anyone's to make.
	forged, err := sim.Infinia.Notification("ABR-NEXT", seed.InfiniaID(2), "FROZEN")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(forged)))
	if b, _, _ := l.GetBinding(ctx, "S00002"); rec.Code != http.StatusServiceUnavailable || b.Status != "ACTIVE" {
		t.Errorf("forged FROZEN, the query saying ACTIVE: answered %d, binding %+v; want 503 and ACTIVE recorded", rec.Code, b)
	}
	// Restarted; Infinia freezes the seller and notifies, with that requestNo.
	restarted, err := bindingWebhook(l, inf)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(restarted)
	defer srv.Close()
	if err := sim.Infinia.Notify(ctx, &http.Client{}, srv.URL, "ABR-NEXT", seed.InfiniaID(2), "FROZEN"); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := l.GetBinding(ctx, "S00002"); b.Status != "FROZEN" {
		t.Fatalf("Infinia's notification after the forgery was answered SUCCESS, the freeze not recorded: binding %+v", b)
	}
	// Delivered again, it costs no query.
	queries := sim.Infinia.Calls("account-binding/query")
	if err := sim.Infinia.Notify(ctx, &http.Client{}, srv.URL, "ABR-NEXT", seed.InfiniaID(2), "FROZEN"); err != nil {
		t.Fatal(err)
	}
	if n := sim.Infinia.Calls("account-binding/query") - queries; n != 0 {
		t.Fatalf("a repeat of a confirmed notification cost %d binding queries", n)
	}
}
