package payprotocol_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// watchRig is a ledger in PostgreSQL and the Pay Protocol fake behind a
// server that counts the payment details asked of each order and answers
// 500 about the orders of fail, every time.
type watchRig struct {
	l      *ledger.Ledger
	fake   *payprotocoltest.Server
	client *payprotocol.Client
	mu     sync.Mutex
	asked  map[string]int
	fail   map[string]bool
}

func newWatchRig(t *testing.T) *watchRig {
	t.Helper()
	l, err := ledger.Open(context.Background(), pgtest.URL(t), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.SetActor("watch test") // who its resolutions are recorded with
	r := &watchRig{l: l, asked: map[string]int{}, fail: map[string]bool{}}
	r.fake = payprotocoltest.New(payprotocoltest.Options{APIKey: testKey, APISecret: testSecret, Faults: fault.New(1)})
	t.Cleanup(r.fake.Close)
	mux := http.NewServeMux()
	mux.Handle("/api/mer/", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasSuffix(req.URL.Path, "/"+payprotocol.APIPaymentDetail) {
			no := req.URL.Query().Get("outTradeNo")
			r.mu.Lock()
			r.asked[no]++
			fail := r.fail[no]
			r.mu.Unlock()
			if fail {
				http.Error(w, "upstream down", http.StatusInternalServerError)
				return
			}
		}
		r.fake.ServeHTTP(w, req)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := r.fake.ClientConfig(srv.URL + "/api/mer")
	cfg.RetryBase, cfg.RetryMax, cfg.Timeout = time.Millisecond, 5*time.Millisecond, 5*time.Second
	if r.client, err = payprotocol.New(cfg); err != nil {
		t.Fatal(err)
	}
	return r
}

// run opens the whole run of d with the Pay Protocol orders of rejected
// (order: the reason it is rejected for; "" leaves it recorded), each a
// payment of 10.00 USD that the fake answers with the status of paid.
func (r *watchRig) run(t *testing.T, d pipeline.Date, rejected map[string]string, paid map[string]payprotocol.PaymentStatus) *pipeline.Run {
	t.Helper()
	ctx := context.Background()
	run, _, err := r.l.OpenRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole}, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	at := d.Time(time.UTC).Add(time.Hour)
	if _, err := r.l.WriteItems(ctx, run, func(w pipeline.ItemWriter) error {
		for no := range rejected {
			if err := w.Split(pipeline.Split{Order: pipeline.Order{OrderNo: no, SellerID: "S1", Channel: payprotocol.Channel, ProviderTxnID: no,
				Currency: "USD", Amount: 1000, Category: "c", PaidAt: at, ConfirmedAt: at}, Rule: "r", SellerShare: 1000, Unverified: true}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for no, reason := range rejected {
		if reason != "" {
			if err := r.l.SetItemState(ctx, run.ID, no, ledger.ItemUnverified, ledger.ItemRejected, reason); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.fake.AddPayment(no, "USDT", 6, "10000000", paid[no]); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.SetQuote(no, "USD", "10.00", true); err != nil {
			t.Fatal(err)
		}
	}
	return run
}

// TestTheWatchFindsARejectedOrderPaidLongAfterItsDate: an order rejected
// for its failed payment (by a person, or by an older settle) was asked
// about only while its date was reconciled - a run of it, or a recheck
// within --recheck-days - so one paid late 40 days after its date, with
// --recheck-days 1, was never seen: money the platform received and never
// settled, nobody told. Tonight's run (its reconcile stage, with the
// ledger in PostgreSQL and the Pay Protocol fake) asks about the rejected
// orders of the watched days once each: the one paid late is a row of
// tonight's findings naming its date and the command, with a WARN line
// (the stage needs a person: exit 4), nothing paid; one Pay Protocol
// answers only with errors is a row of its own, the others asked all the
// same; one still failed, one rejected for another reason, one older than
// the window are not reported (the last two not asked); the orders of a
// date the stage rechecks are asked by that recheck alone. Reopened by a
// person, the order is no longer asked.
func TestTheWatchFindsARejectedOrderPaidLongAfterItsDate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newWatchRig(t)
	person := pipeline.RejectedByPerson + " (Pay Protocol answered payment X failed at T): no pay, PP-9; was held: " + payprotocol.HeldFailedPayment
	tonight := pipeline.Date{Year: 2027, Month: 1, Day: 10}
	old, older, recent := tonight.AddDays(-40), tonight.AddDays(-100), tonight.AddDays(-1)
	paid, failed := payprotocol.PaymentPaid, payprotocol.PaymentFailed
	r.run(t, old, map[string]string{"A": person, "B": payprotocol.RejectedFailedPayment, "C": person, "F": "Pay Protocol payment is refunded", "G": ""},
		map[string]payprotocol.PaymentStatus{"A": paid, "B": paid, "C": failed, "F": paid, "G": paid})
	r.run(t, older, map[string]string{"D": person}, map[string]payprotocol.PaymentStatus{"D": paid})
	rechecked := r.run(t, recent, map[string]string{"E": person}, map[string]payprotocol.PaymentStatus{"E": paid})
	// The recent date's findings hold a timing gap: tonight rechecks it.
	if err := r.l.ReplaceMismatches(ctx, rechecked.ID, []pipeline.Mismatch{{Provider: "x", Category: pipeline.MismatchTiming, Subject: "s", Expected: true}}); err != nil {
		t.Fatal(err)
	}
	run := r.run(t, tonight, nil, nil)
	r.fail["B"] = true

	var logged bytes.Buffer
	p := payprotocol.NewProvider(payprotocol.ProviderConfig{Client: r.client, Store: r.l, Pacer: pipeline.NewPacer(pipeline.Limits{Rate: 50}),
		Rejected: r.l, Log: slog.New(slog.NewTextHandler(&logged, nil)), Watch: r.l, WatchDays: 90})
	stage := pipeline.ReconcileStageWatching(r.l, p.Matchers, p.Watchers, func(context.Context, *pipeline.Run) (string, error) { return "", nil }, 1)
	_, err := stage(ctx, run)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson || !strings.Contains(err.Error(), "payprotocol status A") {
		t.Fatalf("tonight's reconcile: %v, want it to need a person for A", err)
	}
	for no, want := range map[string]int{"A": 1, "C": 1, "D": 0, "E": 1, "F": 0, "G": 0} {
		if got := r.asked[no]; got != want {
			t.Errorf("Pay Protocol asked about %s %d times, want %d", no, got, want)
		}
	}
	if r.asked["B"] == 0 {
		t.Errorf("B was not asked")
	}
	var mine []pipeline.Mismatch
	if err := r.l.Reader.MismatchLines(ctx, tonight, func(m pipeline.Mismatch) error { mine = append(mine, m); return nil }); err != nil {
		t.Fatal(err)
	}
	bySubject := map[string]pipeline.Mismatch{}
	for _, m := range mine {
		if _, twice := bySubject[m.Subject]; twice {
			t.Errorf("two rows about %s", m.Subject)
		}
		bySubject[m.Subject] = m
	}
	if len(mine) != 2 {
		t.Errorf("tonight's findings %+v, want A's and B's", mine)
	}
	a := bySubject["A"]
	if a.Expected || a.Category != pipeline.MismatchStatus || a.OursState != pipeline.ItemRejected || a.TheirsState != "paid" || a.Ours != "1000" ||
		!strings.Contains(a.Detail, "order of "+old.String()) || !strings.Contains(a.Detail, "settle resolve --date "+old.String()+" --order A --reopen") {
		t.Errorf("A, paid 40 days after its date: %+v, want an unexpected status row naming its date and the command", a)
	}
	if b := bySubject["B"]; b.Expected || b.Category != pipeline.MismatchUnverifiable || !strings.Contains(b.Detail, "order of "+old.String()) {
		t.Errorf("B, not answered: %+v, want an unverifiable row of its own", b)
	}
	log := logged.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, payprotocol.PaidAfterRejection) || !strings.Contains(log, "order=A date="+old.String()) {
		t.Errorf("no WARN line naming A and its date:\n%s", log)
	}
	var recentRows []pipeline.Mismatch
	if err := r.l.Reader.MismatchLines(ctx, recent, func(m pipeline.Mismatch) error { recentRows = append(recentRows, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(recentRows) != 1 || recentRows[0].Subject != "E" || recentRows[0].TheirsState != "paid" {
		t.Errorf("the recheck of %s: %+v, want E's row", recent, recentRows)
	}
	if state, _ := itemState(t, r.l, old, "A"); state != pipeline.ItemRejected {
		t.Errorf("A is %s: paid by itself", state)
	}

	// A person reopens A: the watch asks no more about it, and B answers
	// again.
	if _, _, err := r.l.ReopenRejected(ctx, old, payprotocol.Channel, "A", payprotocol.RejectedReasons, payprotocol.HeldReopened, "paid", "checked, PP-10"); err != nil {
		t.Fatal(err)
	}
	delete(r.fail, "B")
	before := r.asked["A"]
	if _, err := stage(ctx, run); pipeline.KindOf(err) != pipeline.KindNeedsPerson || strings.Contains(err.Error(), "status A") || !strings.Contains(err.Error(), "status B") {
		t.Errorf("after A was reopened: %v, want B alone, paid late too", err)
	}
	if r.asked["A"] != before {
		t.Errorf("A asked again after it was reopened")
	}

	// 0 days: nothing watched.
	asked := r.asked["B"]
	p = payprotocol.NewProvider(payprotocol.ProviderConfig{Client: r.client, Store: r.l, Rejected: r.l, Watch: r.l, WatchDays: 0})
	if len(p.Watchers) != 0 {
		t.Errorf("a watcher with 0 days")
	}
	if _, err := pipeline.ReconcileStageWatching(r.l, p.Matchers, p.Watchers, func(context.Context, *pipeline.Run) (string, error) { return "", nil }, 0)(ctx, run); err != nil {
		t.Errorf("not watched: %v", err)
	}
	if r.asked["B"] != asked {
		t.Errorf("B asked with the watch off")
	}
}

// itemState returns the state and reason of order no of date d.
func itemState(t *testing.T, l *ledger.Ledger, d pipeline.Date, no string) (string, string) {
	t.Helper()
	it, err := l.Item(context.Background(), d, no)
	if err != nil {
		t.Fatal(err)
	}
	return it.State, it.Reason
}
