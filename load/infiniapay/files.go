package infiniapay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/settlekit/settle/internal/httpcall"
	"github.com/settlekit/settle/pipeline"
)

// ErrorRow is one line of an upload's error file: which line of our trade
// file Infinia refused and why. Line 0 is about the whole file.
type ErrorRow struct {
	Line     int
	OrderNo  string
	Reason   string
	Currency pipeline.Currency // the platform's code, when the layout has a currency column
}

// maxErrorFile bounds what we read of an error file.
const maxErrorFile = 64 << 20

// ErrorFile downloads and parses the error file of a FAILED upload (a plain
// GET of Upload.ErrorFileURL, retried like a query). Errors show the URL
// without its query string, which may hold a token. The file is unsigned
// and decides which of a refused file's items are rejected: it is fetched
// over https only (plain http only from a loopback host: the simulator),
// and a redirect to plain http is not followed (found by a review).
func (c *Client) ErrorFile(ctx context.Context, fileURL string) ([]ErrorRow, error) {
	u, err := url.Parse(fileURL)
	sp := spec{api: APIErrorFile}
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, sp.fail(failLocal, errors.New("error file URL is not an http(s) URL"))
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, sp.fail(failLocal, fmt.Errorf("error file URL %s://%s%s: plain http; the error file is fetched over https only", u.Scheme, u.Host, u.Path))
	}
	sp.requestNo = u.Scheme + "://" + u.Host + u.Path
	var rows []ErrorRow
	err = c.do(ctx, sp, func(ctx context.Context) *Error {
		var e *Error
		rows, e = c.getErrorFile(ctx, sp, u.String())
		return e
	})
	return rows, err
}

// loopback reports whether host is this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Client) getErrorFile(ctx context.Context, sp spec, fileURL string) ([]ErrorRow, *Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fileURL, nil)
	if err != nil {
		return nil, sp.fail(failLocal, errors.New("bad error file URL"))
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return nil, sp.fail(netFailure(err), redactURL(err, sp.requestNo))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := sp.fail(failHTTP, nil)
		e.HTTPStatus, e.RetryAfter = resp.StatusCode, httpcall.RetryAfter(resp, c.cfg.Now)
		if resp.StatusCode == http.StatusNotFound {
			e.Err = ErrNotFound
		}
		return nil, e
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorFile+1))
	if err != nil {
		return nil, sp.fail(failNoAnswer, fmt.Errorf("reading the error file: %w", redactURL(err, sp.requestNo)))
	}
	if len(raw) > maxErrorFile {
		return nil, sp.fail(failBadAnswer, fmt.Errorf("error file larger than %d bytes", maxErrorFile))
	}
	rows, err := c.cfg.Layout.ParseErrorFile(bytes.NewReader(raw), c.cfg.Currencies)
	if err != nil {
		return nil, sp.fail(failBadAnswer, err)
	}
	return rows, nil
}

// redactURL replaces the URL in a *url.Error by its form without query.
func redactURL(err error, safe string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: safe, Err: ue.Err}
	}
	return err
}

// TradeFileName is the name of the trade-details file of one seller (by
// Infinia seller id), currency and business date, with Infinia's code for
// the currency (CNH for CNY by default):
// TD_<platformId>_<sellerId>_<currency>_<YYYYMMDD>_<requestNo>.csv (see
// the function TradeFileName).
func (c *Client) TradeFileName(sellerID string, cur pipeline.Currency, day pipeline.Date, requestNo string) (string, error) {
	name, err := TradeFileName(c.cfg.PlatformID, sellerID, cur, day, requestNo)
	if err != nil {
		return "", err
	}
	if code := c.cfg.Currencies.Out(cur); code != string(cur) {
		name = strings.Replace(name, "_"+string(cur)+"_"+day.Compact()+"_", "_"+code+"_"+day.Compact()+"_", 1)
	}
	return name, nil
}
