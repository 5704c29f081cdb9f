package payprotocol_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/pipeline"
)

// TestTheRefundListStartsTheLookbackBeforeTheDate: a refund the platform
// nets is made before the buyer confirms receipt, which ends the escrow,
// so before the run's date: the listing starts DefaultRefundLookback (30
// days) before the start of the date, in the run's time zone, and ends
// when it is read, or, for the verification (UpToTheDate), at the end of
// the date. The refunds of the run's orders made 20 and 10 days
// before the date are kept (a refund made twice there is what the
// listing is for); one made 31 days before is not asked for. Nothing
// pinned the start: a listing from the date's start alone (missing every
// refund made before it) passed every test.
func TestTheRefundListStartsTheLookbackBeforeTheDate(t *testing.T) {
	ctx := context.Background()
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	date, err := pipeline.ParseDate("2026-11-23")
	if err != nil {
		t.Fatal(err)
	}
	start := pipeline.WindowOf(date, sh).Start // 2026-11-22T16:00:00Z
	var clock atomic.Int64
	at := func(t time.Time) { clock.Store(t.UnixNano()) }
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	at(start.AddDate(0, 0, -40))
	fake := payprotocoltest.New(payprotocoltest.Options{APIKey: testKey, APISecret: testSecret, Faults: fault.New(1), TimeScale: 1.0 / 1000, Now: now})
	t.Cleanup(fake.Close)
	var mu sync.Mutex
	var asked []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/"+payprotocol.APIRefundList) {
			mu.Lock()
			asked = append(asked, r.URL.Query())
			mu.Unlock()
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client, err := payprotocol.New(fake.ClientConfig(srv.URL + "/api/mer"))
	if err != nil {
		t.Fatal(err)
	}
	for _, no := range []string{"A", "B"} {
		if _, err := fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
	}
	refund := func(no string, days int) string {
		t.Helper()
		at(start.AddDate(0, 0, -days))
		id, err := fake.AddRefund(no, "1000000", payprotocol.RefundSuccess)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	refund("A", 31) // before the lookback
	a20, a10, b1 := refund("A", 20), refund("A", 10), refund("B", 1)
	// Made after the date, on the next: a late refund of the next date.
	at(start.Add(24*time.Hour + 10*time.Minute))
	late, err := fake.AddRefund("B", "1000000", payprotocol.RefundSuccess)
	if err != nil {
		t.Fatal(err)
	}
	read := start.Add(26*time.Hour + time.Second/2) // the nightly run, the day after the date
	at(read)
	store := listStore{ppStore{items: []pipeline.RefundedItem{{OrderNo: "OA", ProviderTxnID: "A"}, {OrderNo: "OB", ProviderTxnID: "B"}}}}
	run := &pipeline.Run{ID: 42, Key: pipeline.RunKey{Date: date}, TimeZone: "Asia/Shanghai"}
	from := strconv.FormatInt(start.AddDate(0, 0, -30).Unix(), 10)
	for _, tc := range []struct {
		name        string
		upToTheDate bool
		to          string   // endTime
		b           []string // B's refunds listed
	}{
		// The reconciliation's: up to now, rounded up to the second.
		{"to now", false, strconv.FormatInt(read.Unix()+1, 10), []string{b1, late}},
		// The verification's: up to the end of the date, which is not in
		// it; the next date's late refund is not listed (it held B, and
		// ended the nightly run 4, before).
		{"to the date's end", true, strconv.FormatInt(start.Add(24*time.Hour).Unix()-1, 10), []string{b1}},
	} {
		mu.Lock()
		asked = nil
		mu.Unlock()
		listing := &payprotocol.RefundListing{API: payprotocol.Adapter{Client: client}, Store: store, Now: now, UpToTheDate: tc.upToTheDate}
		success, _, err := payprotocol.ListedIDs(ctx, listing, run)
		if err != nil {
			t.Fatal(err)
		}
		for _, ids := range success {
			slices.Sort(ids)
		}
		want := map[string][]string{"A": {a10, a20}, "B": tc.b}
		slices.Sort(want["A"])
		slices.Sort(want["B"])
		if !reflect.DeepEqual(success, want) {
			t.Errorf("%s: listed %v, want %v", tc.name, success, want)
		}
		if len(asked) != 1 || asked[0].Get("startTime") != from || asked[0].Get("endTime") != tc.to {
			t.Errorf("%s: asked %v, want one page from %s to %s", tc.name, asked, from, tc.to)
		}
	}
}

// TestAListEntryNamingNoOrderMakesTheListUnreadable: an entry of the
// refund list that cannot be read and names no order may be a refund of
// any order of the run: the list cannot be used (the verification leaves
// the payments for the next run, the reconciliation says so), not read as
// if the entry were another merchant's. An unreadable entry of another
// order is that order's alone.
func TestAListEntryNamingNoOrderMakesTheListUnreadable(t *testing.T) {
	bad := errors.New("refundStatus 9")
	store := listStore{ppStore{items: []pipeline.RefundedItem{{OrderNo: "OA", ProviderTxnID: "A"}}}}
	list := func(u payprotocol.UnreadableRefund) error {
		page := payprotocol.RefundPage{Count: 1, Page: 1, Size: 500, Unreadable: []payprotocol.UnreadableRefund{u}}
		listing := &payprotocol.RefundListing{API: pagesLister{pages: []payprotocol.RefundPage{page}}, Store: store}
		_, _, err := payprotocol.ListedIDs(context.Background(), listing, &pipeline.Run{ID: 42})
		return err
	}
	if err := list(payprotocol.UnreadableRefund{RefundID: "7", Err: bad}); !errors.Is(err, payprotocol.ErrAnswer) || !strings.Contains(err.Error(), "names no order") {
		t.Errorf("an entry naming no order: %v, want the list unreadable", err)
	}
	if err := list(payprotocol.UnreadableRefund{OutTradeNo: "ANOTHER", RefundID: "7", Err: bad}); err != nil {
		t.Errorf("an entry of another order: %v", err)
	}
}
