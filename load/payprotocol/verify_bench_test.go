package payprotocol_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/settlekit/settle/internal/heaptest"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
)

// pagedVerifyStore is a ledger of n unverified items in order-number
// order that serves pages as the ledger does (a copy of the page) and
// records nothing.
type pagedVerifyStore struct{ items []pipeline.VerifyItem }

func newPagedVerifyStore(n int) *pagedVerifyStore {
	s := &pagedVerifyStore{items: make([]pipeline.VerifyItem, n)}
	for i := range s.items {
		s.items[i] = toVerify(fmt.Sprintf("T%08d", i), 0)
	}
	return s
}

func (s *pagedVerifyStore) ItemsToVerifyAfter(_ context.Context, _ int64, _ pipeline.Channel, _, after string, limit int) ([]pipeline.VerifyItem, string, error) {
	i := sort.Search(len(s.items), func(i int) bool { return s.items[i].OrderNo > after })
	j, next := len(s.items), ""
	if limit > 0 && i+limit <= j {
		j, next = i+limit, s.items[i+limit-1].OrderNo
	}
	return slices.Clone(s.items[i:j]), next, nil
}

func (s *pagedVerifyStore) SetItemState(context.Context, int64, string, string, string, string) error {
	return nil
}

// paidAPI is a Pay Protocol that answers at once that every payment was
// paid in the order's amount, with no refund.
type paidAPI struct{}

func (paidAPI) Payment(context.Context, string) (payprotocol.Order, error) {
	return payprotocol.Order{Status: payprotocol.PaymentPaid.String(), Quote: pipeline.Money{Minor: 1000, Currency: "USD"}}, nil
}

func (paidAPI) Refund(context.Context, string, payprotocol.Order) (*payprotocol.OrderRefund, error) {
	return nil, nil
}

// BenchmarkVerifyPeakHeap measures the most live heap above the ledger
// (here in memory) while the verification verifies a day of n Pay
// Protocol payments, read whole (a page as large as the day: how it
// worked before it read pages) or 10,000 at a time:
//
//	go test ./load/payprotocol/ -run '^$' -bench VerifyPeakHeap -benchtime 1x
func BenchmarkVerifyPeakHeap(b *testing.B) {
	for _, n := range []int{50_000, 200_000} {
		for _, batch := range []int{n, 10_000} {
			b.Run(fmt.Sprintf("payments=%d/page=%d", n, batch), func(b *testing.B) {
				defer payprotocol.SetVerifyBatch(batch)()
				for range b.N {
					store := newPagedVerifyStore(n)
					peak, err := heaptest.PeakLive(func() error {
						_, err := payprotocol.Verify(context.Background(), store, paidAPI{}, nil, nil, &pipeline.Run{ID: 42})
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(peak, "peak-heap-MiB")
				}
			})
		}
	}
}
