package wechatpay

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Bill is where to download a day's distribution bill. WeChat Pay answers
// only download_url: the URL is short lived, the file carries no hash and
// is not signed, and it may be served from another WeChat Pay host than the
// API's. DownloadBill checks the host; BillLayout.Parse checks the file's
// own summary lines.
type Bill struct {
	URL string
}

// Settlement states (the settle_state a query selects).
const (
	SettleStateSettled   = "SETTLED"
	SettleStateUnsettled = "UNSETTLE"
)

// SettlementQuery selects a sub-merchant's fund settlement details by state
// and, SETTLED, by settlement date (both dates inclusive; sent as
// yyyyMMdd). WeChat Pay publishes the dates as required for SETTLED and
// "invalid" for UNSETTLE: an UNSETTLE query sends none and answers every
// detail of the sub-merchant not settled yet, whatever Start and End say.
type SettlementQuery struct {
	SubMchID string
	State    string // SettleStateSettled or SettleStateUnsettled
	Start    pipeline.Date
	End      pipeline.Date
}

// SettlementAmount is what a settlement batch holds, in minor units of
// Currency: what was paid in and refunded over its trade dates, the net
// and the fee, and how much of it is settled and how much not yet.
type SettlementAmount struct {
	Currency  pipeline.Currency
	Settled   int64
	Unsettled int64 // "unsettle" on the wire
	Pay       int64
	Refund    int64
	Net       int64
	Fee       int64
}

// Settlement is one fund settlement batch of a sub-merchant, as WeChat Pay
// publishes it: batch_id, settlement_date, trade_start_date,
// trade_end_date, amount and wallet_region. State is the settle_state the
// query asked for.
type Settlement struct {
	BatchID        string
	State          string
	SettlementDate pipeline.Date // zero when not given
	TradeStart     pipeline.Date
	TradeEnd       pipeline.Date
	Amount         SettlementAmount
	WalletRegion   string
}

// SettlementPage is one page of settlement details.
type SettlementPage struct {
	Offset int
	Limit  int
	Total  int // every detail the query selects, when WeChat Pay says (0: not said)
	Items  []Settlement
}

type (
	wireBill struct {
		DownloadURL string `json:"download_url"`
	}
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
		SettlementDate string               `json:"settlement_date"`
		TradeStartDate string               `json:"trade_start_date"`
		TradeEndDate   string               `json:"trade_end_date"`
		Amount         wireSettlementAmount `json:"amount"`
		WalletRegion   string               `json:"wallet_region"`
	}
	wireSettlementPage struct {
		Offset     int              `json:"offset"`
		Limit      int              `json:"limit"`
		TotalCount int              `json:"total_count"`
		Data       []wireSettlement `json:"data"`
	}
)

// BillDownloadURL asks where to download a sub-merchant's distribution
// bill of a day (WeChat Pay keeps 90 days).
func (c *Client) BillDownloadURL(ctx context.Context, subMchID string, day pipeline.Date) (Bill, error) {
	q := url.Values{"sub_mchid": {subMchID}, "bill_date": {day.String()}}
	sp := c.spec(APIBillURL, http.MethodGet, distributionPrefix+"bill-download-url", q, day.String(), subMchID)
	if subMchID == "" || day.IsZero() {
		return Bill{}, sp.fail(failLocal, errors.New("want a sub_mchid and a date"))
	}
	var out wireBill
	if err := c.call(ctx, sp, nil, &out); err != nil {
		return Bill{}, err
	}
	if out.DownloadURL == "" {
		return Bill{}, sp.fail(failBadAnswer, fmt.Errorf("%w: no download_url", ErrAnswer))
	}
	return Bill{URL: out.DownloadURL}, nil
}

// billHostAllowed reports whether a bill may be downloaded from u: over
// TLS from a host that is one of Config.BillHosts or below one of them, or
// from the API host itself (as configured: the operator's own choice).
func (c *Client) billHostAllowed(u *url.URL) bool {
	if u.Scheme == c.base.Scheme && u.Host == c.base.Host {
		return true
	}
	if u.Scheme != "https" || u.User != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, h := range c.cfg.BillHosts {
		h = strings.ToLower(strings.TrimPrefix(h, "."))
		if h != "" && (host == h || strings.HasSuffix(host, "."+h)) {
			return true
		}
	}
	return false
}

// DownloadBill downloads a bill: a signed GET of its URL, which must be
// HTTPS on a WeChat Pay host (Config.BillHosts) or on the API host. The
// file is not signed (a signature, when present, must verify); its content
// is checked by its summary lines (BillLayout.Parse). The download URL never appears
// in errors (it carries a token).
func (c *Client) DownloadBill(ctx context.Context, b Bill) ([]byte, error) {
	sp := spec{api: APIBill, method: http.MethodGet, file: true, limit: c.cfg.MaxBillBytes}
	u, err := url.Parse(b.URL)
	if err != nil || u.Host == "" || !c.billHostAllowed(u) {
		host := "(unreadable)"
		if err == nil {
			host = u.Scheme + "://" + u.Host
		}
		return nil, sp.fail(failLocal, fmt.Errorf("download URL on %s: want HTTPS on a WeChat Pay host (%s) or the API host %s",
			clip(host), strings.Join(c.cfg.BillHosts, ", "), c.base.Host))
	}
	sp.target = u
	a, err := c.do(ctx, sp, func(answer) *Error { return nil })
	if err != nil {
		return nil, err
	}
	return a.body, nil
}

// SettlementPage returns one page of settlement details: limit of them from
// offset (0-based).
func (c *Client) SettlementPage(ctx context.Context, q SettlementQuery, offset, limit int) (SettlementPage, error) {
	v := url.Values{"sub_mchid": {q.SubMchID}, "settle_state": {q.State}, "offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
	subject := q.State
	if q.State == SettleStateSettled {
		v.Set("settle_start_date", q.Start.Compact())
		v.Set("settle_end_date", q.End.Compact())
		subject = q.Start.String() + ".." + q.End.String()
	}
	sp := c.spec(APISettlements, http.MethodGet, settlementsPath, v, subject, q.SubMchID)
	switch {
	case q.SubMchID == "" || (q.State != SettleStateSettled && q.State != SettleStateUnsettled):
		return SettlementPage{}, sp.fail(failLocal, errors.New("want a sub_mchid and a state SETTLED or UNSETTLE"))
	case q.State == SettleStateSettled && (q.Start.IsZero() || q.End.IsZero() || q.End.Before(q.Start)):
		return SettlementPage{}, sp.fail(failLocal, errors.New("want a start date on or before the end date"))
	case offset < 0 || limit < 1:
		return SettlementPage{}, sp.fail(failLocal, errors.New("want offset >= 0 and limit >= 1"))
	}
	var out wireSettlementPage
	if err := c.call(ctx, sp, nil, &out); err != nil {
		return SettlementPage{}, err
	}
	if len(out.Data) > limit {
		return SettlementPage{}, sp.fail(failBadAnswer, fmt.Errorf("%w: %d details for a limit of %d", ErrAnswer, len(out.Data), limit))
	}
	p := SettlementPage{Offset: offset, Limit: limit, Total: out.TotalCount}
	for i, w := range out.Data {
		s, err := readSettlement(w, q.State)
		if err != nil {
			return SettlementPage{}, sp.fail(failBadAnswer, fmt.Errorf("%w: detail %d: %w", ErrAnswer, offset+i+1, err))
		}
		p.Items = append(p.Items, s)
	}
	return p, nil
}

func readSettlement(w wireSettlement, state string) (Settlement, error) {
	settled, err1 := parseWireDate("settlement_date", w.SettlementDate, true)
	start, err2 := parseWireDate("trade_start_date", w.TradeStartDate, false)
	end, err3 := parseWireDate("trade_end_date", w.TradeEndDate, false)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Settlement{}, err
	}
	a := w.Amount
	cur := pipeline.Currency(a.Currency)
	switch {
	case w.BatchID == "":
		return Settlement{}, errors.New("no batch_id")
	case end.Before(start):
		return Settlement{}, fmt.Errorf("batch %s: trade_end_date %s before trade_start_date %s", clip(w.BatchID), end, start)
	case !cur.Valid():
		return Settlement{}, fmt.Errorf("batch %s: amount.currency %q", clip(w.BatchID), clip(a.Currency))
	case a.Settled < 0 || a.Unsettle < 0 || a.Pay < 0 || a.Refund < 0 || a.Fee < 0:
		return Settlement{}, fmt.Errorf("batch %s: a negative amount (settled %d, unsettle %d, pay %d, refund %d, fee %d)",
			clip(w.BatchID), a.Settled, a.Unsettle, a.Pay, a.Refund, a.Fee)
	}
	return Settlement{BatchID: w.BatchID, State: state, SettlementDate: settled, TradeStart: start, TradeEnd: end,
		Amount: SettlementAmount{Currency: cur, Settled: a.Settled, Unsettled: a.Unsettle, Pay: a.Pay, Refund: a.Refund,
			Net: a.Net, Fee: a.Fee}, WalletRegion: w.WalletRegion}, nil
}

// parseWireDate reads a date as WeChat Pay writes it: yyyyMMdd (as the
// query's dates) or yyyy-MM-dd (as bill_date). Empty is allowed when
// optional.
func parseWireDate(field, s string, optional bool) (pipeline.Date, error) {
	if s == "" && optional {
		return pipeline.Date{}, nil
	}
	for _, layout := range []string{"20060102", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return pipeline.DateOf(t), nil
		}
	}
	return pipeline.Date{}, fmt.Errorf("%s %q: want yyyyMMdd", field, clip(s))
}

// maxSettlementPages stops an iteration over a server that never says it
// is done.
const maxSettlementPages = 10000

// Settlements returns every settlement detail q selects, fetching page
// after page (Config.SettlementPageSize a page) until a short or empty page
// or the total is reached. An error ends the iteration: it is yielded
// with a zero Settlement. A detail met again (offset pages over a list
// that moved between two pages) is yielded once; met again with other
// figures, it is an answer that cannot be used.
func (c *Client) Settlements(ctx context.Context, q SettlementQuery) iter.Seq2[Settlement, error] {
	return func(yield func(Settlement, error) bool) {
		limit, offset := c.cfg.SettlementPageSize, 0
		seen := map[string]Settlement{}
		for range maxSettlementPages {
			p, err := c.SettlementPage(ctx, q, offset, limit)
			if err != nil {
				yield(Settlement{}, err)
				return
			}
			for _, s := range p.Items {
				if before, ok := seen[s.BatchID]; ok {
					if before != s {
						yield(Settlement{}, &Error{API: APISettlements, Key: q.SubMchID, kind: failBadAnswer,
							Err: fmt.Errorf("%w: settlement batch %s listed twice with other figures", ErrAnswer, clip(s.BatchID))})
						return
					}
					continue
				}
				seen[s.BatchID] = s
				if !yield(s, nil) {
					return
				}
			}
			offset += len(p.Items)
			if len(p.Items) < limit || (p.Total > 0 && offset >= p.Total) {
				return
			}
		}
		yield(Settlement{}, fmt.Errorf("wechatpay %s: more than %d pages", APISettlements, maxSettlementPages))
	}
}
