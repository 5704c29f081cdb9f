package wechatpay

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// platform reports whether a receiver is the platform's own. typ "" (a
// bill line: the published bill has no receiver type column) is judged by
// the account alone.
func (a *Adapter) platform(typ, account string) bool {
	return (typ == "" || typ == a.receiver.Type) && account == a.receiver.Account
}

// Order queries a distribution or unfreeze (read by status).
func (a *Adapter) Order(ctx context.Context, subMchID, transactionID, outOrderNo string) (OrderStatus, error) {
	o, err := pipeline.Ask(ctx, func(ctx context.Context) (Order, error) {
		return a.client.QueryOrder(ctx, subMchID, transactionID, outOrderNo)
	})
	if errors.Is(err, ErrNotFound) {
		return OrderStatus{}, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	if err != nil {
		return OrderStatus{}, err
	}
	o.SubMchID = cmp.Or(o.SubMchID, subMchID) // the client checked any it gave: the seller's lines are told by it
	return a.status(o), nil
}

// status reads an order as the matcher does. WeChat Pay's create_time of
// its lines is when it accepted the request (the earliest, should they
// differ).
func (a *Adapter) status(o Order) OrderStatus {
	st := OrderStatus{State: o.State}
	for _, l := range o.Receivers {
		if !l.CreateTime.IsZero() && (st.AcceptedAt.IsZero() || l.CreateTime.Before(st.AcceptedAt)) {
			st.AcceptedAt = l.CreateTime
		}
		st.Lines = append(st.Lines, OrderLine{Platform: a.platform(l.Type, l.Account), Result: l.Result,
			// As the sender judges an unfreeze's line (judge): a line with
			// no type is the sub-merchant's by its account.
			Rest:       o.SubMchID != "" && (l.Type == TypeMerchantID || l.Type == "") && l.Account == o.SubMchID,
			FailReason: l.FailReason, Currency: l.Currency, Amount: l.Amount})
	}
	return st
}

// BillLines downloads, checks and reads a sub-merchant's distribution bill
// of a day, in a.BillLayout (DefaultBillLayout when zero: the published
// header; its unpublished parts assumed, see the README). Its two
// requests (the download link, then the file) are each a question
// (pipeline.Ask).
func (a *Adapter) BillLines(ctx context.Context, subMchID string, day pipeline.Date) ([]BillEntry, error) {
	b, err := pipeline.Ask(ctx, func(ctx context.Context) (Bill, error) { return a.client.BillDownloadURL(ctx, subMchID, day) })
	if err != nil {
		return nil, err
	}
	data, err := pipeline.Ask(ctx, func(ctx context.Context) ([]byte, error) { return a.client.DownloadBill(ctx, b) })
	if err != nil {
		return nil, err
	}
	layout := a.BillLayout
	if layout == (BillLayout{}) {
		layout = DefaultBillLayout
	}
	lines, err := layout.Parse(data)
	if err != nil {
		return nil, unusable{fmt.Errorf("bill of %s at %s: %w", day, subMchID, err)}
	}
	out := make([]BillEntry, 0, len(lines))
	for _, l := range lines {
		out = append(out, BillEntry{Time: l.Time, TransactionID: l.TransactionID, OutOrderNo: l.OutOrderNo,
			Type: l.Type, Platform: l.Type == BillDistribution && a.platform(l.ReceiverType, l.Account),
			Currency: l.Currency, Amount: l.Amount})
	}
	return out, nil
}

// settlementLag is how many days after a trade day its fund settlement
// detail is looked for (details are selected by settlement date).
const settlementLag = 7

// Settlements returns a sub-merchant's fund settlement details of a trade
// day, SETTLED and UNSETTLE: those WeChat Pay settled, or is to settle,
// within settlementLag days of it, whose trade dates are that day. The
// amount compared is amount.settled of a SETTLED detail and
// amount.unsettle of an UNSETTLE one (assumed: see the README). A detail
// whose trade dates span that day and others cannot be compared per day and
// is an error, never a guess. The details of a state are one question
// (pipeline.Ask), however many pages they take.
func (a *Adapter) Settlements(ctx context.Context, subMchID string, day pipeline.Date) ([]SettlementDetail, error) {
	var out []SettlementDetail
	for _, state := range []string{SettleStateSettled, SettleStateUnsettled} {
		q := SettlementQuery{SubMchID: subMchID, State: state, Start: day, End: day.AddDays(settlementLag)}
		details, err := pipeline.Ask(ctx, func(ctx context.Context) ([]SettlementDetail, error) {
			var out []SettlementDetail
			for s, err := range a.client.Settlements(ctx, q) {
				if err != nil {
					return nil, err
				}
				switch {
				case day.Before(s.TradeStart) || s.TradeEnd.Before(day):
					continue // another trade day's
				case s.TradeStart != day || s.TradeEnd != day:
					return nil, unusable{fmt.Errorf("settlement %s of %s covers trades of %s to %s: a detail per day was assumed", s.BatchID, subMchID, s.TradeStart, s.TradeEnd)}
				}
				amount := s.Amount.Settled
				if state == SettleStateUnsettled {
					amount = s.Amount.Unsettled
				}
				out = append(out, SettlementDetail{BatchNo: s.BatchID, State: s.State, Currency: s.Amount.Currency, Amount: amount})
			}
			return out, nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, details...)
	}
	return out, nil
}

// unusable is an answer about one sub-merchant's day that the adapter
// cannot use once read (a bill that does not parse, a settlement detail
// over several days): it concerns that sub-merchant alone, as a signed
// answer the client cannot read does (Error.Unreadable).
type unusable struct{ err error }

func (u unusable) Error() string    { return u.err.Error() }
func (u unusable) Unwrap() error    { return u.err }
func (u unusable) Unreadable() bool { return true }
