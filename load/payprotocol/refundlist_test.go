package payprotocol_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
)

// TestRefundListPagesThroughTheFake: RefundList reads every page of the
// fake's refund list, signed like every call, each refund once, and no
// more pages than the count needs; the filters are sent as published
// (orderStatus, startTime, endTime) and the fake applies them.
func TestRefundListPagesThroughTheFake(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	var clock atomic.Int64 // the fake's and the client's: the callbacks read it too
	at := func(t time.Time) { clock.Store(t.UnixNano()) }
	at(now)
	r := newRig(t, payprotocoltest.Options{Polls: 50, Now: func() time.Time { return time.Unix(0, clock.Load()) }}, nil)
	var want, success []string
	for i := range 12 {
		no := fmt.Sprintf("T-%02d", i)
		if _, err := r.fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		for j, st := range []payprotocol.RefundStatus{payprotocol.RefundSuccess, payprotocol.RefundPendingApproval} {
			if i%3 == 0 && j == 1 {
				continue
			}
			at(now.Add(time.Duration(2*i+j) * time.Minute))
			id, err := r.fake.AddRefund(no, "1000000", st)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
			if st == payprotocol.RefundSuccess {
				success = append(success, id)
			}
		}
	}
	at(now.Add(time.Hour))
	list := func(f payprotocol.RefundFilter) (ids []string, pages int, err error) {
		t.Helper()
		before := r.fake.Calls(payprotocol.APIRefundList)
		err = r.client.RefundList(ctx, f, func(p payprotocol.RefundPage) error {
			if len(p.Unreadable) > 0 {
				t.Errorf("unreadable entries: %+v", p.Unreadable)
			}
			for _, rf := range p.Refunds {
				ids = append(ids, rf.RefundID)
			}
			return nil
		})
		return ids, r.fake.Calls(payprotocol.APIRefundList) - before, err
	}
	sorted := func(s []string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		return s
	}
	// 20 refunds: 4 pages of 6, the last short; 4 of 5, the last full.
	for _, c := range []struct{ size, pages int }{{6, 4}, {5, 4}, {500, 1}, {1, 20}} {
		ids, pages, err := list(payprotocol.RefundFilter{Size: c.size})
		if err != nil || !slices.Equal(sorted(ids), sorted(want)) || pages != c.pages {
			t.Fatalf("pages of %d: %d pages, %v, %v; want %d pages of %v", c.size, pages, ids, err, c.pages, want)
		}
	}
	// Successful ones only, created in a window: T-02's to T-07's.
	ok := payprotocol.RefundSuccess
	ids, pages, err := list(payprotocol.RefundFilter{Status: &ok, From: now.Add(4 * time.Minute), To: now.Add(14*time.Minute + time.Second/2), Size: 4})
	if err != nil || pages != 2 || !slices.Equal(sorted(ids), sorted(success[2:8])) {
		t.Fatalf("successful ones of a window: %d pages, %v, %v; want 2 pages of %v", pages, ids, err, success[2:8])
	}
	// A page size outside the published bounds is refused before sending.
	before := r.fake.Calls(payprotocol.APIRefundList)
	if _, _, err := list(payprotocol.RefundFilter{Size: 501}); err == nil || r.fake.Calls(payprotocol.APIRefundList) != before {
		t.Fatalf("size 501: %v", err)
	}
	// A bound on the pages read is kept.
	if _, pages, err := list(payprotocol.RefundFilter{Size: 5, MaxPages: 3}); err == nil || pages != 3 {
		t.Fatalf("at most 3 pages: read %d, %v", pages, err)
	}
}

// TestRefundListAnswers: the list's published integers are read written
// as numbers or strings; an entry that cannot be read is that entry's
// problem, named, and the others are read; a page that moved while it was
// read gives a refund twice, never loses one unnoticed; a page that is not
// the one asked for, more entries than its size, or fewer refunds in all
// than the count are errors.
func TestRefundListAnswers(t *testing.T) {
	pages := map[string]string{}
	var serve func(page int) string // when set, answers instead of pages
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/refund/list") || r.Header.Get("X-PAY-SIGN") == "" {
			http.NotFound(w, r)
			return
		}
		asked = append(asked, r.URL.RawQuery)
		if serve != nil {
			n, _ := strconv.Atoi(r.URL.Query().Get("page"))
			w.Write([]byte(serve(n)))
			return
		}
		w.Write([]byte(pages[r.URL.Query().Get("page")]))
	}))
	defer srv.Close()
	c, err := payprotocol.New(payprotocol.Config{BaseURL: srv.URL + "/api/mer", APIKey: testKey, APISecret: testSecret,
		HTTP: payprotocol.NewHTTPClient(5 * time.Second), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	item := func(id, order string, status int, amount string) string {
		return fmt.Sprintf(`{"chainId":1,"currencyId":1,"refundId":%s,"outTradeNo":%q,"outPaymentNo":"P","refundAddress":"a","refundAmount":%s,"refundFee":"0","refundStatus":%d}`,
			id, order, amount, status)
	}
	sorted := func(s []string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		return s
	}
	read := func() (ids, bad []string, err error) {
		asked = nil
		ok := payprotocol.RefundSuccess
		err = c.RefundList(context.Background(), payprotocol.RefundFilter{Status: &ok, Size: 2, From: time.Unix(1700000000, 0), To: time.Unix(1700000100, 5)},
			func(p payprotocol.RefundPage) error {
				for _, r := range p.Refunds {
					ids = append(ids, r.OutTradeNo+"/"+r.RefundID+"/"+r.Amount.String())
				}
				for _, u := range p.Unreadable {
					bad = append(bad, u.OutTradeNo+"/"+u.RefundID)
				}
				return nil
			})
		return ids, bad, err
	}
	// Strings for numbers and numbers for strings; an unknown status and
	// a successful refund without an amount are named, not fatal.
	pages["1"] = `{"code":200,"msg":"success","data":{"count":"5","page":"1","size":2,"list":[` + item(`"7"`, "A", 0, `"100"`) + `,` + item(`8`, "B", 0, `200`) + `]}}`
	pages["2"] = `{"code":200,"data":{"count":5,"page":2,"size":"2","list":[` + item(`9`, "C", 9, `"1"`) + `,` + item(`10`, "D", 0, `null`) + `]}}`
	pages["3"] = `{"code":200,"data":{"count":5,"page":3,"size":2,"list":[` + item(`11`, "E", 0, `"5"`) + `]}}`
	ids, bad, err := read()
	if err != nil || !slices.Equal(ids, []string{"A/7/100", "B/8/200", "E/11/5"}) || !slices.Equal(bad, []string{"C/9", "D/10"}) {
		t.Fatalf("got %v, unreadable %v, %v", ids, bad, err)
	}
	if want := "page=1&size=2&orderStatus=0&startTime=1700000000&endTime=1700000101"; len(asked) != 3 || asked[0] != want {
		t.Fatalf("asked %v, want 3 pages, the first %s", asked, want)
	}
	// A list that moves while it is read, newest first: a refund added
	// at its front after the first page shifts the rest by one. The first
	// walk sees F twice and misses N; the second sees every one.
	list := []string{item(`13`, "G", 0, `"5"`), item(`12`, "F", 0, `"5"`), item(`11`, "E", 0, `"5"`), item(`8`, "B", 0, `200`), item(`7`, "A", 0, `"100"`)}
	added := false
	serve = func(n int) string {
		page := list[min(2*(n-1), len(list)):min(2*n, len(list))]
		out := fmt.Sprintf(`{"code":200,"data":{"count":%d,"page":%d,"size":2,"list":[%s]}}`, len(list), n, strings.Join(page, ","))
		if !added {
			list, added = append([]string{item(`14`, "N", 0, `"5"`)}, list...), true
		}
		return out
	}
	ids, _, err = read()
	if distinct := sorted(ids); err != nil || !slices.Equal(slices.Compact(distinct), []string{"A/7/100", "B/8/200", "E/11/5", "F/12/5", "G/13/5", "N/14/5"}) || len(asked) != 6 {
		t.Fatalf("a list that moved: %v (%d pages), %v", ids, len(asked), err)
	}
	// A refund lost for good: fewer distinct ones than counted, twice.
	serve = func(n int) string {
		page := list[min(2*(n-1), len(list)):min(2*n, len(list))]
		return fmt.Sprintf(`{"code":200,"data":{"count":%d,"page":%d,"size":2,"list":[%s]}}`, len(list)+1, n, strings.Join(page, ","))
	}
	if _, _, err := read(); !errors.Is(err, payprotocol.ErrAnswer) || !strings.Contains(err.Error(), "incomplete") || len(asked) != 8 {
		t.Fatalf("a refund lost between pages: %v (%d pages)", err, len(asked))
	}
	serve = nil
	for name, p1 := range map[string]string{
		"another page":   `{"code":200,"data":{"count":5,"page":2,"size":2,"list":[]}}`,
		"no count":       `{"code":200,"data":{"page":1,"size":2,"list":[]}}`,
		"too many":       `{"code":200,"data":{"count":5,"page":1,"size":2,"list":[` + item(`7`, "A", 0, `"1"`) + `,` + item(`8`, "B", 0, `"1"`) + `,` + item(`9`, "C", 0, `"1"`) + `]}}`,
		"short of count": `{"code":200,"data":{"count":5,"page":1,"size":2,"list":[]}}`,
	} {
		pages["1"] = p1
		if _, _, err := read(); !errors.Is(err, payprotocol.ErrAnswer) {
			t.Errorf("%s: %v, want ErrAnswer", name, err)
		}
	}
}

// TestASecondWalkOfAMovingRefundListEndsEarlier: a merchant makes refunds
// every few seconds, and this machine's clock is 50 s ahead of Pay
// Protocol's (Pay Protocol takes 60 s). A listing that ends at "now" asks
// for refunds Pay Protocol is still creating: each one made while the
// pages are read moves the count (the list is newest first), and every
// walk came out short ("the list is incomplete"), so no Pay Protocol
// payment was verified. The second walk ends ListingMargin before the
// first, where nothing is being created, and is complete.
func TestASecondWalkOfAMovingRefundListEndsEarlier(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	var clock atomic.Int64 // Pay Protocol's
	clock.Store(at.Add(-10 * time.Minute).UnixNano())
	theirs := func() time.Time { return time.Unix(0, clock.Load()) }
	r := newRig(t, payprotocoltest.Options{Now: theirs}, func(c *payprotocol.Config) {
		c.Now = func() time.Time { return theirs().Add(50 * time.Second) } // ours, ahead
	})
	var old []string
	for i := range 12 {
		no := fmt.Sprintf("T-%02d", i)
		if _, err := r.fake.AddPayment(no, "USDT", 6, "10000000", payprotocol.PaymentPaid); err != nil {
			t.Fatal(err)
		}
		id, err := r.fake.AddRefund(no, "1000000", payprotocol.RefundSuccess)
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, id)
	}
	clock.Store(at.UnixNano())
	made := 0
	seen := map[string]bool{}
	err := r.client.RefundList(ctx, payprotocol.RefundFilter{Size: 5, To: theirs().Add(50 * time.Second)}, func(p payprotocol.RefundPage) error {
		for _, rf := range p.Refunds {
			seen[rf.RefundID] = true
		}
		// A refund made at Pay Protocol while the pages are read.
		made++
		_, err := r.fake.AddRefund(fmt.Sprintf("T-%02d", made%12), "1000", payprotocol.RefundSuccess)
		return err
	})
	if err != nil {
		t.Fatalf("%v: want the second walk, ending earlier, complete", err)
	}
	for _, id := range old {
		if !seen[id] {
			t.Errorf("refund %s, made before the listing, not seen", id)
		}
	}
}
