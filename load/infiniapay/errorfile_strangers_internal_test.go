package infiniapay

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// fileItems is finishedFiles whose trade file holds the items orders.
type fileItems struct {
	finishedFiles
	orders []string
	reason string
	reads  int // ItemsForTrade calls
}

func (s *fileItems) ItemsForTrade(_ context.Context, _ int64, _ string, _ pipeline.Currency, _ []pipeline.Channel, _ string, fn func(pipeline.Split) error) error {
	s.reads++
	for _, o := range s.orders {
		if err := fn(pipeline.Split{Order: pipeline.Order{OrderNo: o}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileItems) FinishTradeFile(ctx context.Context, f pipeline.TradeFile, refused []pipeline.ProviderReject, to, reason string) error {
	s.reason = reason
	return s.finishedFiles.FinishTradeFile(ctx, f, refused, to, reason)
}

// TestASuccessWhoseErrorFileNamesOrdersNotInTheFileIsHeld: Infinia
// answered SUCCESS about a trade file with an error file whose rows name
// orders the file does not hold (another file's error file, a stale
// link): the rows matched none of the file's items, every item was taken
// as uploaded and paid, and the file's reason said "accepted; 1 rows
// refused" of a row it never had. Which of the file's rows Infinia
// refused is not known: the file is held for a person, as one whose
// error file refuses it as a whole. An error file naming the file's own
// orders is taken as before.
func TestASuccessWhoseErrorFileNamesOrdersNotInTheFileIsHeld(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		rows   []pipeline.ProviderReject
		to     string
		status string
	}{
		{"an error file without rows", nil, "uploaded", StatusSuccess},
		{"its own order", []pipeline.ProviderReject{{OrderNo: "O2", Reason: "product type not allowed"}}, "uploaded", StatusSuccess},
		{"an order not in the file", []pipeline.ProviderReject{{OrderNo: "O9", Reason: "product type not allowed"}}, "held", StatusFailed},
		{"its own and a stranger", []pipeline.ProviderReject{{OrderNo: "O1", Reason: "x"}, {OrderNo: "O9", Reason: "y"}}, "held", StatusFailed},
	} {
		store := &fileItems{orders: []string{"O1", "O2", "O3"}}
		c := &StageConfig{Store: store, API: acceptedWithErrors{rows: tc.rows}}
		f := pipeline.TradeFile{ID: 1, RequestNo: "R1", Name: "F1.csv", Status: StatusReceived, SellerID: "S1", Currency: "USD"}
		final, _, err := checkUpload(context.Background(), c, &pipeline.Run{ID: 1}, f)
		if err != nil || final.Status != tc.status || store.to != tc.to {
			t.Fatalf("%s: checkUpload: %+v, %v; items made %q; want %s, items %s", tc.name, final, err, store.to, tc.status, tc.to)
		}
		if tc.rows == nil && store.reads != 0 {
			// An error file without rows gives nothing to look for:
			// the file's items are not read for it.
			t.Errorf("%s: the file's items read %d times, want none", tc.name, store.reads)
		}
		if tc.to == "held" && (!strings.Contains(store.reason, "O9") || !strings.Contains(store.reason, "not in the file")) {
			t.Errorf("%s: reason %q, want it to name O9 as not in the file", tc.name, store.reason)
		}
	}
}
