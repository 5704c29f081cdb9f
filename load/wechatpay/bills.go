package wechatpay

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Bill is where to download a day's distribution bill. The URL is short
// lived (30 seconds in the mainland API).
type Bill struct {
	URL       string
	HashType  string // "SHA1" or "SHA256" when given (assumed optional)
	HashValue string // hex digest of the file, when given
}

// Settlement states.
const (
	SettleStateSettled   = "SETTLED"
	SettleStateUnsettled = "UNSETTLE"
)

// SettlementQuery selects a sub-merchant's fund settlement details by state
// and by settlement date (both dates inclusive).
type SettlementQuery struct {
	SubMchID string
	State    string // SettleStateSettled or SettleStateUnsettled
	Start    pipeline.Date
	End      pipeline.Date
}

// Settlement is one fund settlement batch of a sub-merchant. The fields
// beyond the state are not public and assumed (see the README).
type Settlement struct {
	BatchNo   string
	State     string // SettleStateSettled or SettleStateUnsettled
	Currency  pipeline.Currency
	Amount    int64 // minor units
	Start     pipeline.Date
	End       pipeline.Date
	SettledAt time.Time // zero while UNSETTLE
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
		HashType    string `json:"hash_type,omitempty"`
		HashValue   string `json:"hash_value,omitempty"`
	}
	wireSettlement struct {
		BatchNo   string `json:"settle_batch_no"`
		State     string `json:"settle_state"`
		Currency  string `json:"settle_currency"`
		Amount    int64  `json:"settle_amount"`
		StartDate string `json:"settle_start_date"`
		EndDate   string `json:"settle_end_date"`
		SettledAt string `json:"settle_time,omitempty"`
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
	return Bill{URL: out.DownloadURL, HashType: out.HashType, HashValue: out.HashValue}, nil
}

// DownloadBill downloads a bill (a signed GET of its URL, which must be on
// the API host) and checks it: by its signature when WeChat Pay signed the
// answer, and by the hash BillDownloadURL gave when there is one. A bill
// with neither is refused. The download URL never appears in errors (it
// carries a token).
func (c *Client) DownloadBill(ctx context.Context, b Bill) ([]byte, error) {
	sp := spec{api: APIBill, method: http.MethodGet, file: true, limit: c.cfg.MaxBillBytes}
	u, err := url.Parse(b.URL)
	if err != nil || u.Scheme != c.base.Scheme || u.Host != c.base.Host {
		return nil, sp.fail(failLocal, fmt.Errorf("download URL is not on the API host %s", c.base.Host))
	}
	sp.target = u
	var sum hash.Hash
	switch strings.ToUpper(b.HashType) {
	case "":
	case "SHA1":
		sum = sha1.New()
	case "SHA256":
		sum = sha256.New()
	default:
		return nil, sp.fail(failLocal, fmt.Errorf("unknown hash type %q", clip(b.HashType)))
	}
	a, err := c.do(ctx, sp, func(a answer) *Error {
		if sum == nil {
			if !a.signed {
				return sp.fail(failBadAnswer, fmt.Errorf("%w: bill neither signed nor hashed: cannot trust it", ErrSignature))
			}
			return nil
		}
		sum.Reset()
		sum.Write(a.body)
		if got := hex.EncodeToString(sum.Sum(nil)); !strings.EqualFold(got, b.HashValue) {
			return sp.fail(failBadAnswer, fmt.Errorf("%w: bill %s is %s, the download URL said %s", ErrAnswer, b.HashType, got, clip(b.HashValue)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a.body, nil
}

// SettlementPage returns one page of settlement details: limit of them from
// offset (0-based).
func (c *Client) SettlementPage(ctx context.Context, q SettlementQuery, offset, limit int) (SettlementPage, error) {
	v := url.Values{"sub_mchid": {q.SubMchID}, "settle_state": {q.State}, "settle_start_date": {q.Start.String()},
		"settle_end_date": {q.End.String()}, "offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
	sp := c.spec(APISettlements, http.MethodGet, settlementsPath, v, q.Start.String()+".."+q.End.String(), q.SubMchID)
	switch {
	case q.SubMchID == "" || (q.State != SettleStateSettled && q.State != SettleStateUnsettled):
		return SettlementPage{}, sp.fail(failLocal, errors.New("want a sub_mchid and a state SETTLED or UNSETTLE"))
	case q.Start.IsZero() || q.End.IsZero() || q.End.Before(q.Start):
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
		s, err := readSettlement(w)
		if err != nil {
			return SettlementPage{}, sp.fail(failBadAnswer, fmt.Errorf("%w: detail %d: %w", ErrAnswer, offset+i+1, err))
		}
		p.Items = append(p.Items, s)
	}
	return p, nil
}

func readSettlement(w wireSettlement) (Settlement, error) {
	start, err1 := pipeline.ParseDate(w.StartDate)
	end, err2 := pipeline.ParseDate(w.EndDate)
	at, err3 := parseTime(w.SettledAt)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Settlement{}, err
	}
	cur := pipeline.Currency(w.Currency)
	if (w.State != SettleStateSettled && w.State != SettleStateUnsettled) || !cur.Valid() || w.Amount < 0 {
		return Settlement{}, fmt.Errorf("state %q, amount %d %q", clip(w.State), w.Amount, clip(w.Currency))
	}
	return Settlement{BatchNo: w.BatchNo, State: w.State, Currency: cur, Amount: w.Amount, Start: start, End: end, SettledAt: at}, nil
}

// maxSettlementPages stops an iteration over a server that never says it
// is done.
const maxSettlementPages = 10000

// Settlements returns every settlement detail q selects, fetching page
// after page (Config.SettlementPageSize a page) until a short or empty page
// or the total is reached. An error ends the iteration: it is yielded
// with a zero Settlement.
func (c *Client) Settlements(ctx context.Context, q SettlementQuery) iter.Seq2[Settlement, error] {
	return func(yield func(Settlement, error) bool) {
		limit, offset := c.cfg.SettlementPageSize, 0
		for range maxSettlementPages {
			p, err := c.SettlementPage(ctx, q, offset, limit)
			if err != nil {
				yield(Settlement{}, err)
				return
			}
			for _, s := range p.Items {
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
