package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
)

func TestSellersBindSyncAndWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "20", "--sellers", "3")
	sim := e.sim(nil, 0, nil, 0)
	// Flags come before the seller id (urfave/cli stops at the first argument).
	args := func(cmd string, rest ...string) []string {
		return append(append([]string{"sellers", cmd}, sim.Config.Args()...), rest...)
	}

	out, code := e.settleSub(args("bind", "--store-url", "https://shop.example/s2", "S00002")...)
	if code != 0 || !strings.Contains(out, "send the seller to: http") {
		t.Fatalf("bind: exit %d:\n%s", code, out)
	}
	if _, code := e.settleSub(args("bind", "--store-url", "https://shop.example/x", "S99999")...); code != 2 {
		t.Fatal("binding an unknown seller must be a usage error")
	}
	// A request longer than Infinia publishes (requestData of at most 2048
	// characters) is not sent: a usage error (it was exit 1, "retry is
	// safe", for a request that would never fit).
	long := "https://shop.example/" + strings.Repeat("s", 800) // too long whatever the key size (testKeyBits)
	if out, code := e.settleSub(args("bind", "--store-url", long, "S00002")...); code != 2 || !strings.Contains(out, "--store-url") {
		t.Fatalf("bind with a store URL of %d characters: exit %d, want 2\n%s", len(long), code, out)
	}
	// Without the store URL Infinia requires: a usage error, nothing sent.
	if out, code := e.settleSub(args("bind", "S00002")...); code != 2 || !strings.Contains(out, "--store-url") {
		t.Fatalf("bind without --store-url: exit %d, want 2\n%s", code, out)
	}
	// The same request again is replayed; corrected the same day (another
	// currency), it is a new request (it reused the first's requestNo and
	// was refused: found by a review).
	if out, code := e.settleSub(args("bind", "--store-url", "https://shop.example/s2", "S00002")...); code != 0 {
		t.Fatalf("the same bind again: exit %d\n%s", code, out)
	}
	if out, code := e.settleSub(args("bind", "--store-url", "https://shop.example/s2", "--currency", "CNY", "S00002")...); code != 0 {
		t.Fatalf("a corrected bind the same day: exit %d\n%s", code, out)
	}
	// Infinia activates the seller; sync brings the status home.
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	out, code = e.settleSub(args("sync")...)
	if code != 0 || !strings.Contains(out, "S00002") || !strings.Contains(out, "ACTIVE") {
		t.Fatalf("sync: exit %d:\n%s", code, out)
	}
	l, err := ledger.Open(context.Background(), e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if b, ok, _ := l.GetBinding(context.Background(), "S00002"); !ok || b.Status != "ACTIVE" || b.Source != "query" {
		t.Fatalf("binding after sync: %+v", b)
	}

	// The webhook: a FROZEN notification, delivered twice, is recorded once.
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
	srv := httptest.NewServer(h)
	defer srv.Close()
	for i := 0; i < 2; i++ {
		if err := sim.Infinia.Notify(context.Background(), &http.Client{}, srv.URL, "WH-1", seed.InfiniaID(2), "FROZEN"); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if b, _, _ := l.GetBinding(context.Background(), "S00002"); b.Status != "FROZEN" || b.Source != "webhook" {
		t.Fatalf("binding after webhook: %+v", b)
	}
	// A later query result is not undone by a replayed delivery.
	l.SetBinding(context.Background(), pipeline.Binding{SellerID: "S00002", ProviderSellerID: seed.InfiniaID(2), Status: "ACTIVE", Source: "query"})
	if err := sim.Infinia.Notify(context.Background(), &http.Client{}, srv.URL, "WH-1", seed.InfiniaID(2), "FROZEN"); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := l.GetBinding(context.Background(), "S00002"); b.Status != "ACTIVE" {
		t.Fatalf("a repeated delivery was applied again: %+v", b)
	}
	// After a restart (a new handler), the ledger knows the delivery: it is
	// answered without a binding query.
	restarted, err := bindingWebhook(l, inf)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(restarted)
	defer srv2.Close()
	queries := sim.Infinia.Calls("account-binding/query")
	if err := sim.Infinia.Notify(context.Background(), &http.Client{}, srv2.URL, "WH-1", seed.InfiniaID(2), "FROZEN"); err != nil {
		t.Fatal(err)
	}
	if n := sim.Infinia.Calls("account-binding/query") - queries; n != 0 {
		t.Fatalf("a delivery dealt with before the restart cost %d binding queries", n)
	}
	if b, _, _ := l.GetBinding(context.Background(), "S00002"); b.Status != "ACTIVE" {
		t.Fatalf("a repeated delivery was applied again after a restart: %+v", b)
	}
	// A notification (unsigned, as documented) is never acted on alone: it
	// claims FROZEN, the binding query says ACTIVE, ACTIVE is recorded, and
	// the notification, unconfirmed, is answered 503 to be delivered again.
	sim.Infinia.SetBinding(seed.InfiniaID(2), "ACTIVE")
	body, err := sim.Infinia.Notification("WH-2", seed.InfiniaID(2), "FROZEN")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(string(body)))
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("unsigned notification: %v %v", resp, err)
	}
	resp.Body.Close()
	if b, _, _ := l.GetBinding(context.Background(), "S00002"); b.Status != "ACTIVE" || b.RequestNo != "WH-2" {
		t.Fatalf("binding after an unconfirmed notification: %+v", b)
	}
	// A notification about an Infinia id the ledger has never known
	// (anyone with our public key can make one) is answered SUCCESS,
	// neither asked of Infinia nor recorded (found by a security review:
	// it cost a binding query on our appId's rate and a row, for any id).
	queries = sim.Infinia.Calls("account-binding/query")
	if err := sim.Infinia.Notify(context.Background(), &http.Client{}, srv.URL, "WH-3", "INF_NOT_OURS", "FROZEN"); err != nil {
		t.Fatalf("a notification about an id not ours: %v", err)
	}
	if n := sim.Infinia.Calls("account-binding/query") - queries; n != 0 {
		t.Fatalf("a notification about an id not ours cost %d binding queries", n)
	}
	if n, err := l.Bindings(context.Background()); err != nil || slices.ContainsFunc(n, func(b pipeline.Binding) bool { return b.ProviderSellerID == "INF_NOT_OURS" }) {
		t.Fatalf("an id not ours recorded: %+v, %v", n, err)
	}
}

// settleSub runs a command whose first word is not the one that takes the
// database flag (sellers SUB ...).
func (e *env) settleSub(args ...string) (string, int) {
	e.t.Helper()
	return e.raw(append([]string{"settle", args[0], args[1], "--database-url", e.url}, args[2:]...)...)
}

// TestSellersWebhookOnAnAddressInUse: the webhook printed "listening on
// ADDR" before it took the address, then failed with exit 1 ("a retry is
// safe") when the address was in use: one line said it listened, the next
// that it could not (found by an operator's review). It takes the address
// first: one in use is configuration (exit 2, naming --listen) and nothing
// claims to listen.
func TestSellersWebhookOnAnAddressInUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.sim(nil, 0, nil, 0)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	out, code := e.settleSub(append(append([]string{"sellers", "webhook"}, sim.Config.Args()...), "--listen", busy.Addr().String())...)
	if code != 2 || strings.Contains(out, "listening on") || !strings.Contains(out, "--listen") {
		t.Fatalf("webhook on an address in use: exit %d, want 2 naming --listen and no word of listening:\n%s", code, out)
	}
}
