package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// matcher returns the WeChat part of the reconcile stage: the run's
// distributions and unfreezes, the sub-merchants' bills and fund settlement
// details compared with the ledger (pipeline.WeChatMatcher). now tells
// whether a Beijing day is over, so that its bill is out.
func (w *weChatSetup) matcher(l *ledger.Ledger, now func() time.Time) pipeline.Matcher {
	return pipeline.WeChatMatcher(l, weChatReconciler{w}, now)
}

// weChatReconciler adapts the WeChat client to what the WeChat matcher
// consumes.
type weChatReconciler struct{ w *weChatSetup }

var _ pipeline.WeChatReconciler = weChatReconciler{}

// platform reports whether a receiver is the platform's own.
func (r weChatReconciler) platform(typ, account string) bool {
	return typ == r.w.receiver.Type && account == r.w.receiver.Account
}

// Order queries a distribution or unfreeze. WeChat Pay's create_time of
// its lines is when it accepted the request (the earliest, should they
// differ).
func (r weChatReconciler) Order(ctx context.Context, subMchID, transactionID, outOrderNo string) (pipeline.WeChatOrderStatus, error) {
	o, err := r.w.client.QueryOrder(ctx, subMchID, transactionID, outOrderNo)
	if errors.Is(err, wechatpay.ErrNotFound) {
		return pipeline.WeChatOrderStatus{}, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	if err != nil {
		return pipeline.WeChatOrderStatus{}, err
	}
	st := pipeline.WeChatOrderStatus{State: o.State}
	for _, l := range o.Receivers {
		if !l.CreateTime.IsZero() && (st.AcceptedAt.IsZero() || l.CreateTime.Before(st.AcceptedAt)) {
			st.AcceptedAt = l.CreateTime
		}
		st.Lines = append(st.Lines, pipeline.WeChatLine{Platform: r.platform(l.Type, l.Account), Result: l.Result,
			FailReason: l.FailReason, Amount: l.Amount})
	}
	return st, nil
}

// BillLines downloads, checks and reads a sub-merchant's distribution bill
// of a day, in wechatpay.DefaultBillLayout (the published header; its
// unpublished parts assumed, see the README).
func (r weChatReconciler) BillLines(ctx context.Context, subMchID string, day pipeline.Date) ([]pipeline.WeChatBillLine, error) {
	b, err := r.w.client.BillDownloadURL(ctx, subMchID, day)
	if err != nil {
		return nil, err
	}
	data, err := r.w.client.DownloadBill(ctx, b)
	if err != nil {
		return nil, err
	}
	lines, err := wechatpay.ParseBill(data)
	if err != nil {
		return nil, fmt.Errorf("bill of %s at %s: %w", day, subMchID, err)
	}
	out := make([]pipeline.WeChatBillLine, 0, len(lines))
	for _, l := range lines {
		out = append(out, pipeline.WeChatBillLine{Time: l.Time, TransactionID: l.TransactionID, OutOrderNo: l.OutOrderNo,
			Type: l.Type, Platform: l.Type == wechatpay.BillDistribution && r.platform(l.ReceiverType, l.Account),
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
// is an error, never a guess.
func (r weChatReconciler) Settlements(ctx context.Context, subMchID string, day pipeline.Date) ([]pipeline.WeChatSettlement, error) {
	var out []pipeline.WeChatSettlement
	for _, state := range []string{wechatpay.SettleStateSettled, wechatpay.SettleStateUnsettled} {
		q := wechatpay.SettlementQuery{SubMchID: subMchID, State: state, Start: day, End: day.AddDays(settlementLag)}
		for s, err := range r.w.client.Settlements(ctx, q) {
			if err != nil {
				return nil, err
			}
			switch {
			case day.Before(s.TradeStart) || s.TradeEnd.Before(day):
				continue // another trade day's
			case s.TradeStart != day || s.TradeEnd != day:
				return nil, fmt.Errorf("settlement %s of %s covers trades of %s to %s: a detail per day was assumed", s.BatchID, subMchID, s.TradeStart, s.TradeEnd)
			}
			amount := s.Amount.Settled
			if state == wechatpay.SettleStateUnsettled {
				amount = s.Amount.Unsettled
			}
			out = append(out, pipeline.WeChatSettlement{BatchNo: s.BatchID, State: s.State, Currency: s.Amount.Currency, Amount: amount})
		}
	}
	return out, nil
}
