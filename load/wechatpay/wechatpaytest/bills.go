package wechatpaytest

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
)

// billPath is where the fake serves bill downloads, below
// /v3/global/profit-sharing/.
const billPath = "bill-download"

// billTTL is how long a bill download URL works.
const billTTL = 30 * time.Second

// maxSettlementLimit is the largest page of settlement details the fake
// answers, as WeChat Pay publishes (wechatpay.MaxSettlementLimit).
const maxSettlementLimit = wechatpay.MaxSettlementLimit

// batch is a sub-merchant's settlement of distributed funds for one day
// and currency: UNSETTLE, growing with each distribution, until Settle.
type batch struct {
	no        string
	subMchID  string
	cur       pipeline.Currency
	amount    int64
	day       pipeline.Date
	state     string
	settledAt time.Time
}

type billFile struct {
	data    []byte
	expires time.Time
}

// settle adds distributed funds to the sub-merchant's open batch of the
// day (Beijing time) of at, and returns that batch.
func (s *Server) settle(subMchID string, cur pipeline.Currency, amount int64, at time.Time) *batch {
	day := pipeline.DateOf(at.In(wechatpay.Beijing))
	for _, b := range s.batches {
		if b.subMchID == subMchID && b.cur == cur && b.day == day && b.state == wechatpay.SettleStateUnsettled {
			b.amount += amount
			return b
		}
	}
	b := &batch{no: fmt.Sprintf("SB%s%06d", day.Compact(), s.next()), subMchID: subMchID, cur: cur,
		amount: amount, day: day, state: wechatpay.SettleStateUnsettled}
	s.batches = append(s.batches, b)
	return b
}

// Settle settles every UNSETTLE batch: their details turn SETTLED.
func (s *Server) Settle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.batches {
		if b.state == wechatpay.SettleStateUnsettled {
			b.state, b.settledAt = wechatpay.SettleStateSettled, s.o.Now()
		}
	}
}

// bill returns a sub-merchant's bill lines of a day: every SUCCESS line of
// its distributions and unfreezes accepted that day (Beijing time), in
// the order they were accepted.
func (s *Server) bill(subMchID string, day pipeline.Date) []wechatpay.BillLine {
	var out []wechatpay.BillLine
	for _, o := range s.orders[subMchID] {
		if pipeline.DateOf(o.at.In(wechatpay.Beijing)) != day {
			continue
		}
		for _, l := range o.lines {
			if l.result != wechatpay.ResultSuccess {
				continue
			}
			typ := wechatpay.BillDistribution
			if o.unfreeze || l.rest {
				typ = wechatpay.BillUnfreeze
			}
			out = append(out, wechatpay.BillLine{Time: o.at, Initiator: s.mchID(), Sponsor: subMchID, TransactionID: o.txnID,
				OutOrderNo: o.outOrderNo, OrderID: o.orderID, DetailID: l.detailID, Type: typ, ReceiverType: l.typ,
				Account: l.account, Currency: l.currency(o.cur), Amount: l.shown(), ExchangeRate: "1", Status: wechatpay.ResultSuccess,
				Description: l.desc})
		}
	}
	slices.SortFunc(out, func(a, b wechatpay.BillLine) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.DetailID, b.DetailID))
	})
	return out
}

// billURL makes the day's bill and answers, as WeChat Pay publishes, only
// a download URL valid for 30 seconds: on Options.BillBaseURL (another
// host) when set, else on the API's host.
func (s *Server) billURL(c call) reply {
	sub, date := c.query.Get("sub_mchid"), c.query.Get("bill_date")
	if a, ok := require([2]string{"sub_mchid", sub}, [2]string{"bill_date", date}); !ok {
		return a
	}
	day, err := pipeline.ParseDate(date)
	if err != nil {
		return paramError("bill_date: want YYYY-MM-DD")
	}
	data, err := wechatpay.FormatBill(s.bill(sub, day))
	if err != nil {
		return refuse(http.StatusInternalServerError, wechatpay.CodeSystemError, err.Error())
	}
	token := randomHex(24)
	s.bills[token] = billFile{data: data, expires: s.o.Now().Add(billTTL)}
	base := c.base
	if s.o.BillBaseURL != "" {
		base = strings.TrimSuffix(s.o.BillBaseURL, "/")
	}
	return ok(map[string]string{"download_url": base + "/v3/global/profit-sharing/" + billPath + "?token=" + url.QueryEscape(token)})
}

// billDownload serves a bill, unsigned like WeChat Pay's file downloads.
func (s *Server) billDownload(c call) reply {
	f, found := s.bills[c.query.Get("token")]
	if !found || !s.o.Now().Before(f.expires) {
		return refuse(http.StatusBadRequest, wechatpay.CodeInvalidRequest, "the download URL is unknown or expired")
	}
	return reply{status: http.StatusOK, file: f.data}
}

type (
	wireSettlementAmount struct {
		Settled  int64  `json:"settled"`
		Unsettle int64  `json:"unsettle"`
		Currency string `json:"currency"`
		Pay      int64  `json:"pay"`
		Refund   int64  `json:"refund"`
		Net      int64  `json:"net"`
		Fee      int64  `json:"fee"`
	}
	wireSettlement struct {
		BatchID        string               `json:"batch_id"`
		SettlementDate string               `json:"settlement_date,omitempty"`
		TradeStartDate string               `json:"trade_start_date"`
		TradeEndDate   string               `json:"trade_end_date"`
		Amount         wireSettlementAmount `json:"amount"`
		WalletRegion   string               `json:"wallet_region"`
	}
)

// settlementDate is when a batch is (or, UNSETTLE, is to be) settled: the
// day it was settled, else the day after its trade day.
func (b *batch) settlementDate() pipeline.Date {
	if !b.settledAt.IsZero() {
		return pipeline.DateOf(b.settledAt.In(wechatpay.Beijing))
	}
	return b.day.AddDays(1)
}

// view is a batch in the published shape: one trade day, what was
// distributed that day as pay and net, no refund or fee, settled or not.
func (b *batch) view() wireSettlement {
	w := wireSettlement{BatchID: b.no, SettlementDate: b.settlementDate().Compact(), TradeStartDate: b.day.Compact(),
		TradeEndDate: b.day.Compact(), WalletRegion: "CN",
		Amount: wireSettlementAmount{Currency: string(b.cur), Pay: b.amount, Net: b.amount}}
	if b.state == wechatpay.SettleStateSettled {
		w.Amount.Settled = b.amount
	} else {
		w.Amount.Unsettle = b.amount
	}
	return w
}

// settlements answers a page of a sub-merchant's settlement details by
// state, oldest first: SETTLED ones by settlement date range (yyyyMMdd,
// required), UNSETTLE ones all of them (the dates are published as
// "invalid" for UNSETTLE: ignored when sent).
func (s *Server) settlements(c call) reply {
	q := c.query
	sub, state := q.Get("sub_mchid"), q.Get("settle_state")
	if a, ok := require([2]string{"sub_mchid", sub}, [2]string{"settle_state", state}); !ok {
		return a
	}
	settled := state == wechatpay.SettleStateSettled
	if a, ok := require([2]string{"settle_start_date", q.Get("settle_start_date")}, [2]string{"settle_end_date", q.Get("settle_end_date")}); settled && !ok {
		return a
	}
	start, err1 := time.Parse("20060102", q.Get("settle_start_date"))
	end, err2 := time.Parse("20060102", q.Get("settle_end_date"))
	offset, err3 := strconv.Atoi(cmp.Or(q.Get("offset"), "0"))
	limit, err4 := strconv.Atoi(cmp.Or(q.Get("limit"), "10"))
	switch {
	case settled && (err1 != nil || err2 != nil || end.Before(start)):
		return paramError("settle_start_date and settle_end_date: want yyyyMMdd, start <= end")
	case !settled && state != wechatpay.SettleStateUnsettled:
		return paramError("settle_state: want SETTLED or UNSETTLE")
	case err3 != nil || err4 != nil || offset < 0 || limit < 1 || limit > maxSettlementLimit:
		return paramError(fmt.Sprintf("offset >= 0 and limit 1..%d", maxSettlementLimit))
	}
	from, to := pipeline.DateOf(start), pipeline.DateOf(end)
	var sel []*batch
	for _, b := range s.batches {
		if d := b.settlementDate(); b.subMchID == sub && b.state == state && (!settled || !d.Before(from) && !to.Before(d)) {
			sel = append(sel, b)
		}
	}
	slices.SortStableFunc(sel, func(a, b *batch) int { return cmp.Compare(a.day.String(), b.day.String()) })
	page := []wireSettlement{}
	from0 := offset
	if offset > 0 {
		from0 = max(0, offset-s.o.SettlementShift)
	}
	for _, b := range sel[min(from0, len(sel)):min(from0+limit, len(sel))] {
		page = append(page, b.view())
	}
	return ok(map[string]any{"offset": offset, "limit": limit, "total_count": len(sel), "data": page})
}
