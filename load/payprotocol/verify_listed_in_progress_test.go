package payprotocol_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// TestARefundInProgressTheListShowsHoldsTheOrder: the verification kept
// only the successful refunds of the refund list. An order netting 1.00
// whose refund was made twice at Pay Protocol, the first still awaiting
// approval and the second (its latest) successful, agreed with that
// latest refund and was verified, its seller paid on 9.00: once the
// approver lets the first through, the buyer has 2.00 back and the
// platform holds 8.00. So was an order netting none with a refund made on
// Pay Protocol's console still awaiting approval (its latest refund is
// not asked). A refund the list shows in progress, other than the latest
// (which holds the order by itself), counts as what it may yet return:
// the order is held when with it the refunds may return more than it nets
// with its late refunds, and verified again by every run of its date. An
// order whose refund in progress its late refunds make up, and the
// ordinary order (its one refund, successful, as it nets), are verified.
func TestARefundInProgressTheListShowsHoldsTheOrder(t *testing.T) {
	ctx := context.Background()
	r := listRig(t, "TWICE", "CONSOLE", "LATE", "ONE", "NETTED")
	pending := func(no, amount string) string {
		t.Helper()
		id, err := r.fake.AddRefund(no, amount, payprotocol.RefundPendingApproval)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := pending("TWICE", "1000000")
	r.refund(t, "TWICE", "1000000") // the latest: successful, as the order nets
	console := pending("CONSOLE", "300000")
	pending("LATE", "500000")
	r.refund(t, "LATE", "500000")
	r.refund(t, "ONE", "1000000")
	pending("NETTED", "1000000") // the latest: in progress, held as before
	late := toVerify("LATE", 50)
	late.LateRefunded = 50
	store := &verifyStore{states: map[string]string{}, items: []pipeline.VerifyItem{toVerify("TWICE", 100), toVerify("CONSOLE", 0), late,
		toVerify("ONE", 100), toVerify("NETTED", 100)}}
	p := payprotocol.NewProvider(payprotocol.ProviderConfig{Client: r.client, Store: store})
	s, err := p.Upload(ctx, &pipeline.Run{ID: 42, Key: pipeline.RunKey{Date: pipeline.DateOf(time.Now().UTC())}, TimeZone: "UTC"})
	if !heldForAPerson(err, "3 Pay Protocol payments held") || s != "Pay Protocol: 2 payments verified, 3 held, 0 rejected" {
		t.Fatalf("%q, %v", s, err)
	}
	for no, want := range map[string][]string{
		"OTWICE":   {"held: " + payprotocol.VerifyHoldPrefix + " refund " + first + " of the order is pending approval", "2.00 USD", "1.00 USD the order nets"},
		"OCONSOLE": {"held: " + payprotocol.VerifyHoldPrefix + " refund " + console + " of the order is pending approval", "0.30 USD", "0.00 USD the order nets"},
		"ONETTED":  {"held: " + payprotocol.VerifyHoldPrefix + " refund is pending approval"},
		"OLATE":    {"recorded: "},
		"OONE":     {"recorded: "},
	} {
		got := store.states[no]
		if !strings.HasPrefix(got, want[0]) {
			t.Errorf("%s: %q, want %q...", no, got, want[0])
		}
		for _, w := range want[1:] {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q, want it to say %q", no, got, w)
			}
		}
	}
}

// pagesLister is a RefundLister whose list is the pages given, in turn
// (a list walked twice gives each page twice).
type pagesLister struct {
	payprotocol.Adapter
	pages []payprotocol.RefundPage
}

func (l pagesLister) ListRefunds(_ context.Context, _, _ time.Time, each func(payprotocol.RefundPage) error) error {
	for _, p := range l.pages {
		if err := each(p); err != nil {
			return err
		}
	}
	return nil
}

// TestAListedRefundIsKeptOnceAsItLastShowed: the list walked twice (it
// moved while read) may show a refund in progress on the first walk and
// final on the second: a successful one is counted once, as what it
// returned, never also as one in progress; a failed or rejected one is
// not counted; one in progress on both walks is kept once; a refund of
// another run's order is not kept.
func TestAListedRefundIsKeptOnceAsItLastShowed(t *testing.T) {
	refund := func(id, no string, st payprotocol.RefundStatus) payprotocol.Refund {
		return payprotocol.Refund{RefundID: id, OutTradeNo: no, Status: st}
	}
	walk := payprotocol.RefundPage{Count: 4, Page: 1, Size: 500, Refunds: []payprotocol.Refund{
		refund("1", "A", payprotocol.RefundPendingApproval), refund("2", "A", payprotocol.RefundUnderReview),
		refund("3", "A", payprotocol.RefundBlockConfirmation), refund("4", "OTHER", payprotocol.RefundPendingApproval)}}
	again := payprotocol.RefundPage{Count: 4, Page: 1, Size: 500, Refunds: []payprotocol.Refund{
		refund("1", "A", payprotocol.RefundSuccess), refund("2", "A", payprotocol.RefundRejected),
		refund("3", "A", payprotocol.RefundBlockConfirmation), refund("4", "OTHER", payprotocol.RefundSuccess)}}
	store := listStore{ppStore{items: []pipeline.RefundedItem{{OrderNo: "OA", ProviderTxnID: "A"}}}}
	listing := &payprotocol.RefundListing{API: pagesLister{pages: []payprotocol.RefundPage{walk, again}}, Store: store}
	success, inProgress, err := payprotocol.ListedIDs(context.Background(), listing, &pipeline.Run{ID: 42})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]string{"A": {"1"}}; !reflect.DeepEqual(success, want) {
		t.Errorf("successful: %v, want %v", success, want)
	}
	if want := map[string][]string{"A": {"3"}}; !reflect.DeepEqual(inProgress, want) {
		t.Errorf("in progress: %v, want %v", inProgress, want)
	}
}
