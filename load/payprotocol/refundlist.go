package payprotocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// APIRefundList is "Query refund order list", GET /refund/list
// (doc.payprotocol.network/docs/api/merchant/get-refund-list): the
// merchant's refund orders, a page at a time, filtered by chain, status,
// transaction hash and creation time, not by order.
const APIRefundList = "refund/list"

// The published bounds of the refund list's paging: size at most 500
// (default 10), page from 1 to 1,000,000.
const (
	RefundListMaxSize = 500
	RefundListMaxPage = 1_000_000
)

// RefundFilter is what RefundList asks for: the published query
// parameters of GET /refund/list. Zero values are not sent.
type RefundFilter struct {
	ChainID int           // chainId; 0: every chain
	Status  *RefundStatus // orderStatus; nil: every status
	TxHash  string        // transactionHash
	// From and To bound the refund orders' creation time (startTime and
	// endTime, Unix seconds: From rounded down, To up); zero: unbounded.
	From, To time.Time
	// Size is how many refunds a page holds (size), 1 to
	// RefundListMaxSize; 0: RefundListMaxSize.
	Size int
	// MaxPages bounds how many pages RefundList reads (it fails past
	// them); 0 or above RefundListMaxPage: RefundListMaxPage.
	MaxPages int
}

// RefundPage is one page of the refund list: Count is how many refunds
// match the filter in all (count), Page and Size the page's number and
// size as Pay Protocol answered them. Unreadable are the entries of the
// page that could not be read as a refund (an unknown status, a
// successful refund without an amount), each with what could be read of
// it: one such entry is no reason to throw the page away, but its order's
// refunds cannot be told, and the caller says so about that order.
type RefundPage struct {
	Count      int64
	Page       int64
	Size       int64
	Refunds    []Refund
	Unreadable []UnreadableRefund
}

// UnreadableRefund is an entry of the refund list that is not a readable
// refund: its order and refund id as written (either may be empty), and
// why.
type UnreadableRefund struct {
	OutTradeNo string
	RefundID   string
	Err        error
}

// wireRefundPage is the refund list's data: the published "page result
// object". Each entry of list is a refund order with the fields of the
// refund detail (wireRefund).
type wireRefundPage struct {
	Count *flexInt   `json:"count"`
	Page  *flexInt   `json:"page"`
	Size  *flexInt   `json:"size"`
	List  []wireItem `json:"list"`
}

// wireItem keeps an entry of the list as written, so that one entry of
// an unexpected shape is that entry's problem, not the page's.
type wireItem []byte

func (w *wireItem) UnmarshalJSON(b []byte) error {
	*w = append((*w)[:0], b...)
	return nil
}

func (f RefundFilter) check() error {
	switch {
	case f.Size < 0 || f.Size > RefundListMaxSize:
		return fmt.Errorf("page size %d: want 1 to %d", f.Size, RefundListMaxSize)
	case f.ChainID < 0:
		return fmt.Errorf("chainId %d: want > 0, or 0 for every chain", f.ChainID)
	case f.Status != nil && !f.Status.Valid():
		return fmt.Errorf("refund status %d: not a documented one", *f.Status)
	case !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From):
		return fmt.Errorf("creation time from %s to %s: the end is before the start", f.From.UTC().Format(time.RFC3339), f.To.UTC().Format(time.RFC3339))
	case !f.From.IsZero() && f.From.Unix() < 0:
		return errors.New("creation time before 1970")
	}
	return nil
}

func (f RefundFilter) size() int {
	if f.Size == 0 {
		return RefundListMaxSize
	}
	return f.Size
}

// query is the filter's query string for page, in the published order of
// the parameters, as sent and signed.
func (f RefundFilter) query(page int) string {
	kv := []string{"chainId", "", "page", strconv.Itoa(page), "size", strconv.Itoa(f.size()), "orderStatus", "", "transactionHash", f.TxHash,
		"startTime", "", "endTime", ""}
	if f.ChainID > 0 {
		kv[1] = strconv.Itoa(f.ChainID)
	}
	if f.Status != nil {
		kv[7] = strconv.Itoa(int(*f.Status))
	}
	if !f.From.IsZero() {
		kv[11] = strconv.FormatInt(f.From.Unix(), 10)
	}
	if !f.To.IsZero() {
		end := f.To.Unix()
		if f.To.After(time.Unix(end, 0)) {
			end++ // up: a refund created in To's second is in
		}
		kv[13] = strconv.FormatInt(end, 10)
	}
	return query(kv...)
}

// RefundListPage returns page (from 1) of the merchant's refund orders
// that match f: GET /refund/list?chainId=&page=&size=&orderStatus=&
// transactionHash=&startTime=&endTime= (as published; empty ones left
// out). count, page and size are read as integers written as numbers or
// strings; the answer must be the page asked for and hold no more than
// its size. Retried on transient failures, like every query.
func (c *Client) RefundListPage(ctx context.Context, f RefundFilter, page int) (RefundPage, error) {
	sp := spec{api: APIRefundList, method: http.MethodGet, query: f.query(page)}
	if err := f.check(); err != nil {
		return RefundPage{}, sp.fail(failLocal, err)
	}
	if page < 1 || page > RefundListMaxPage {
		return RefundPage{}, sp.fail(failLocal, fmt.Errorf("page %d: want 1 to %d", page, RefundListMaxPage))
	}
	var w wireRefundPage
	if err := c.call(ctx, sp, nil, &w); err != nil {
		return RefundPage{}, err
	}
	bad := func(format string, a ...any) (RefundPage, error) {
		return RefundPage{}, sp.fail(failBadAnswer, fmt.Errorf("%w: page %d: "+format, append([]any{ErrAnswer, page}, a...)...))
	}
	switch {
	case w.Count == nil || *w.Count < 0:
		return bad("missing or negative count")
	case w.Page != nil && int(*w.Page) != page:
		return bad("the answer is page %d", int(*w.Page))
	case w.Size != nil && (*w.Size < 0 || *w.Size > RefundListMaxSize):
		return bad("size %d", int(*w.Size))
	}
	p := RefundPage{Count: int64(*w.Count), Page: int64(page), Size: int64(f.size())}
	if w.Size != nil && *w.Size > 0 {
		p.Size = int64(*w.Size)
	}
	if int64(len(w.List)) > p.Size {
		return bad("%d refunds in a page of %d", len(w.List), p.Size)
	}
	for _, raw := range w.List {
		r, err := readListed(raw)
		if err != nil {
			p.Unreadable = append(p.Unreadable, UnreadableRefund{OutTradeNo: r.OutTradeNo, RefundID: r.RefundID, Err: err})
			continue
		}
		p.Refunds = append(p.Refunds, r)
	}
	return p, nil
}

// readListed reads one entry of the refund list as the refund detail is
// read, and what could be read of it when it cannot be.
func readListed(raw []byte) (Refund, error) {
	var w wireRefund
	if err := json.Unmarshal(raw, &w); err != nil {
		var ids struct {
			OutTradeNo string     `json:"outTradeNo"`
			RefundID   flexString `json:"refundId"`
		}
		_ = json.Unmarshal(raw, &ids) // what can be read of it, for the caller to name
		return Refund{OutTradeNo: ids.OutTradeNo, RefundID: string(ids.RefundID)}, fmt.Errorf("%w: %v", ErrAnswer, err)
	}
	return w.refund()
}

// RefundList reads every page of the refund list matching f, one after
// the other, and gives each to each as it comes; it returns each's first
// error. A walk stops at the page that reaches the count the latest page
// gave, or at an empty page, and fails past f.MaxPages pages. Entries are
// told apart by refundId (an integer, as published; one that is not, or
// an unreadable entry, counts as distinct): when a walk saw fewer distinct
// refunds than the count, a list that moved while it was read (a refund
// added before the page being read shifts the later ones by one: one
// entry comes twice and the new one is missed), the list is walked once
// more from its first page, and RefundList fails when the two walks
// together still saw fewer than the latest count. The second walk ends
// ListingMargin before the first (a merchant making refunds every few
// seconds, and this machine's clock ahead of Pay Protocol's, moved the
// count under every walk that ended "now"). each may thus get a refund
// more than once: callers tell them apart by refundId.
func (c *Client) RefundList(ctx context.Context, f RefundFilter, each func(RefundPage) error) error {
	if err := f.check(); err != nil {
		return (spec{api: APIRefundList}).fail(failLocal, err)
	}
	maxPages := f.MaxPages
	if maxPages <= 0 || maxPages > RefundListMaxPage {
		maxPages = RefundListMaxPage
	}
	var ids []int64
	other := 0 // entries without an integer refundId, in the last walk
	var count int64
	for walk := 1; ; walk++ {
		if walk == 2 {
			// The second walk ends ListingMargin earlier: with this
			// machine's clock ahead of Pay Protocol's (it takes 60 s), an
			// end at "now" asked for refunds Pay Protocol was still
			// creating, and the count moved under every walk.
			end := f.To
			if end.IsZero() {
				end = c.cfg.Now()
			}
			if f.To = end.Add(-ListingMargin); !f.From.IsZero() && f.To.Before(f.From) {
				f.To = f.From
			}
		}
		other = 0
		for page := 1; ; page++ {
			if page > maxPages {
				return (spec{api: APIRefundList}).fail(failLocal, fmt.Errorf("more than %d pages of %d refunds (Pay Protocol counts %d)", maxPages, f.size(), count))
			}
			p, err := c.RefundListPage(ctx, f, page)
			if err != nil {
				return err
			}
			count = p.Count
			for _, r := range p.Refunds {
				if id, err := strconv.ParseInt(r.RefundID, 10, 64); err == nil {
					ids = append(ids, id)
				} else {
					other++
				}
			}
			other += len(p.Unreadable)
			if err := each(p); err != nil {
				return err
			}
			if len(p.Refunds)+len(p.Unreadable) == 0 || int64(page)*p.Size >= p.Count {
				break
			}
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		seen := int64(len(ids) + other)
		if seen >= count {
			return nil
		}
		if walk == 2 {
			return (spec{api: APIRefundList}).fail(failBadAnswer, fmt.Errorf("%w: %d refunds listed, Pay Protocol counts %d: the list is incomplete", ErrAnswer, seen, count))
		}
	}
}
