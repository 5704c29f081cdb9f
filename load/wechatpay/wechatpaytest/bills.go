package wechatpaytest

import (
	"cmp"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
// answers (assumed).
const maxSettlementLimit = 10

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
	for _, o := range s.orders {
		if o.subMchID != subMchID || pipeline.DateOf(o.at.In(wechatpay.Beijing)) != day {
			continue
		}
		typ := wechatpay.BillDistribution
		if o.unfreeze {
			typ = wechatpay.BillUnfreeze
		}
		for _, l := range o.lines {
			if l.result != wechatpay.ResultSuccess {
				continue
			}
			out = append(out, wechatpay.BillLine{Time: o.at, SubMchID: subMchID, TransactionID: o.txnID, OutOrderNo: o.outOrderNo,
				OrderID: o.orderID, DetailID: l.detailID, Type: typ, ReceiverType: l.typ, Account: l.account, Currency: o.cur,
				Amount: l.shown(), Description: l.desc})
		}
	}
	slices.SortFunc(out, func(a, b wechatpay.BillLine) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.DetailID, b.DetailID))
	})
	return out
}

// billURL makes the day's bill and answers a download URL valid for 30
// seconds, with the bill's SHA1.
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
	sum := sha1.Sum(data)
	return ok(map[string]string{
		"download_url": c.base + "/v3/global/profit-sharing/" + billPath + "?token=" + url.QueryEscape(token),
		"hash_type":    "SHA1", "hash_value": hex.EncodeToString(sum[:]),
	})
}

// billDownload serves a bill, unsigned like WeChat Pay's file downloads.
func (s *Server) billDownload(c call) reply {
	f, found := s.bills[c.query.Get("token")]
	if !found || !s.o.Now().Before(f.expires) {
		return refuse(http.StatusBadRequest, wechatpay.CodeInvalidRequest, "the download URL is unknown or expired")
	}
	return reply{status: http.StatusOK, file: f.data}
}

type wireSettlement struct {
	BatchNo   string `json:"settle_batch_no"`
	State     string `json:"settle_state"`
	Currency  string `json:"settle_currency"`
	Amount    int64  `json:"settle_amount"`
	StartDate string `json:"settle_start_date"`
	EndDate   string `json:"settle_end_date"`
	SettledAt string `json:"settle_time,omitempty"`
}

// settlements answers a page of a sub-merchant's settlement details by
// state and date range, oldest first.
func (s *Server) settlements(c call) reply {
	q := c.query
	sub, state := q.Get("sub_mchid"), q.Get("settle_state")
	if a, ok := require([2]string{"sub_mchid", sub}, [2]string{"settle_state", state},
		[2]string{"settle_start_date", q.Get("settle_start_date")}, [2]string{"settle_end_date", q.Get("settle_end_date")}); !ok {
		return a
	}
	start, err1 := pipeline.ParseDate(q.Get("settle_start_date"))
	end, err2 := pipeline.ParseDate(q.Get("settle_end_date"))
	offset, err3 := strconv.Atoi(cmp.Or(q.Get("offset"), "0"))
	limit, err4 := strconv.Atoi(cmp.Or(q.Get("limit"), "10"))
	switch {
	case err1 != nil || err2 != nil || end.Before(start):
		return paramError("settle_start_date and settle_end_date: want YYYY-MM-DD, start <= end")
	case state != wechatpay.SettleStateSettled && state != wechatpay.SettleStateUnsettled:
		return paramError("settle_state: want SETTLED or UNSETTLE")
	case err3 != nil || err4 != nil || offset < 0 || limit < 1 || limit > maxSettlementLimit:
		return paramError(fmt.Sprintf("offset >= 0 and limit 1..%d", maxSettlementLimit))
	}
	var sel []*batch
	for _, b := range s.batches {
		if b.subMchID == sub && b.state == state && !b.day.Before(start) && !end.Before(b.day) {
			sel = append(sel, b)
		}
	}
	slices.SortStableFunc(sel, func(a, b *batch) int { return cmp.Compare(a.day.String(), b.day.String()) })
	page := []wireSettlement{}
	for _, b := range sel[min(offset, len(sel)):min(offset+limit, len(sel))] {
		w := wireSettlement{BatchNo: b.no, State: b.state, Currency: string(b.cur), Amount: b.amount,
			StartDate: b.day.String(), EndDate: b.day.String()}
		if !b.settledAt.IsZero() {
			w.SettledAt = b.settledAt.In(wechatpay.Beijing).Format(time.RFC3339)
		}
		page = append(page, w)
	}
	return ok(map[string]any{"offset": offset, "limit": limit, "total_count": len(sel), "data": page})
}
