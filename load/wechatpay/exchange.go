package wechatpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/settlekit/settle/internal/httpcall"
)

// attempt signs and sends the request once and reads and verifies the
// whole answer.
func (c *Client) attempt(ctx context.Context, sp spec) (answer, *Error) {
	var body io.Reader
	if sp.body != nil {
		body = bytes.NewReader(sp.body)
	}
	req, err := http.NewRequestWithContext(ctx, sp.method, sp.target.String(), body)
	if err != nil {
		return answer{}, sp.fail(failLocal, err)
	}
	auth, err := c.authorize(sp.method, req.URL.RequestURI(), sp.body)
	if err != nil {
		return answer{}, sp.fail(failLocal, err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "settle-wechatpay/1 (Go)")
	if sp.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(HeaderSerial, c.cfg.EncryptSerial) // on every request: the key WeChat Pay is to sign its answer with
	if sp.once {
		httpcall.SendOnce(req) // never sent again by the transport itself
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if sp.file && errors.As(err, &ue) {
			ue.URL = "(the download URL)" // it carries a token
		}
		return answer{}, sp.fail(netFailure(err), err)
	}
	defer resp.Body.Close()
	limit := sp.limit
	if limit == 0 {
		limit = maxAnswer
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return answer{}, sp.fail(failNoAnswer, fmt.Errorf("reading the answer: %w", err))
	}
	if int64(len(raw)) > limit {
		return answer{}, sp.fail(failBadAnswer, fmt.Errorf("%w: answer larger than %d bytes", ErrAnswer, limit))
	}
	return c.check(sp, resp, raw)
}

// authorize signs a request and returns its Authorization header.
func (c *Client) authorize(method, pathWithQuery string, body []byte) (string, error) {
	nonce := c.cfg.Nonce()
	if !tokenChars(nonce) || len(nonce) > 32 {
		return "", errors.New("nonce: want 1 to 32 characters of [0-9A-Za-z_-]")
	}
	ts := c.cfg.Now().Unix()
	sig, err := Sign(c.cfg.PrivateKey, RequestMessage(method, pathWithQuery, ts, nonce, body))
	if err != nil {
		return "", err
	}
	return Authorization{MchID: c.cfg.MchID, Nonce: nonce, Timestamp: ts, Serial: c.cfg.SerialNo, Signature: sig}.String(), nil
}

// check verifies an answer's signature (required on success, checked when
// present on an error) and turns an error status into an *Error.
func (c *Client) check(sp spec, resp *http.Response, raw []byte) (answer, *Error) {
	a := answer{status: resp.StatusCode, header: resp.Header, body: raw}
	reqID := resp.Header.Get(HeaderRequestID)
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if resp.Header.Get(HeaderSignature) != "" || (ok && !sp.file) {
		if why := notWeChat(sp, resp); why != "" {
			// Not WeChat Pay's answer (a proxy's page): no word on our
			// keys, as if the answer never arrived.
			e := sp.fail(failNoAnswer, fmt.Errorf("%w: %s", ErrNotWeChat, why))
			e.HTTPStatus, e.RequestID = errStatus(resp.StatusCode), clip(reqID)
			return answer{}, e
		}
		if strings.HasPrefix(resp.Header.Get(HeaderSignature), SignProbePrefix) {
			// WeChat Pay's signature probe: refused, as any answer that
			// does not verify, but no word on our keys (a probe once
			// stopped the run as "check the platform public key").
			e := sp.fail(failNoAnswer, ErrSignProbe)
			e.HTTPStatus, e.RequestID = errStatus(resp.StatusCode), clip(reqID)
			return answer{}, e
		}
		if err := VerifyResponse(c.cfg.PlatformKeys, resp.Header, raw, c.cfg.Now()); err != nil {
			e := sp.fail(failBadAnswer, err)
			e.HTTPStatus, e.RequestID = errStatus(resp.StatusCode), clip(reqID)
			return answer{}, e
		}
		a.signed = true
	}
	if resp.StatusCode == http.StatusAccepted {
		// Accepted, not processed yet: no answer to read (errAccepted).
		e := sp.fail(failAccepted, errAccepted)
		e.HTTPStatus, e.RequestID, e.signed = resp.StatusCode, clip(reqID), a.signed
		return answer{}, e
	}
	if ok {
		return a, nil
	}
	e := sp.fail(failHTTP, nil)
	e.HTTPStatus, e.RequestID, e.signed, e.notReady = resp.StatusCode, clip(reqID), a.signed, c.cfg.NotReadyCodes
	e.RetryAfter = httpcall.RetryAfter(resp, c.cfg.Now)
	var eb struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(raw, &eb) == nil && eb.Code != "" {
		e.kind, e.Code, e.Message = failCode, clip(eb.Code), clip(eb.Message)
		if len(eb.Detail) > 0 && string(eb.Detail) != "null" {
			var buf bytes.Buffer
			if json.Compact(&buf, eb.Detail) == nil {
				e.Detail = clip(buf.String())
			}
		}
	}
	if a.signed && (resp.StatusCode == http.StatusNotFound || slices.Contains(c.cfg.NotFoundCodes, e.Code)) {
		e.Err = ErrNotFound
	}
	return answer{}, e
}

// notWeChat says why resp, an answer whose signature is due, is clearly
// not WeChat Pay's, or "": it carries neither of WeChat Pay's signature
// headers (Wechatpay-Signature, Wechatpay-Serial), or a Content-Type that
// is not JSON (a proxy's HTML page). An answer with WeChat Pay's headers
// and a JSON body (or none) that does not verify is WeChat Pay's signed
// with a key we do not hold: configuration (credentials). A file's answer
// is not JSON.
func notWeChat(sp spec, resp *http.Response) string {
	if sp.file {
		return ""
	}
	ct := resp.Header.Get("Content-Type")
	if resp.Header.Get(HeaderSignature) == "" && resp.Header.Get(HeaderSerial) == "" {
		return fmt.Sprintf("an HTTP %d answer without %s or %s (Content-Type %q): not WeChat Pay's, a proxy's perhaps",
			resp.StatusCode, HeaderSignature, HeaderSerial, clip(ct))
	}
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return fmt.Sprintf("an HTTP %d answer of Content-Type %q, not JSON: not WeChat Pay's, a proxy's perhaps", resp.StatusCode, clip(ct))
	}
	return ""
}

func errStatus(s int) int {
	if s >= 200 && s < 300 {
		return 0
	}
	return s
}

// netFailure tells a connection that was never made (nothing sent) from
// one that broke after the request may have left.
func netFailure(err error) failure {
	if httpcall.NotSent(err) {
		return failNotSent
	}
	return failNoAnswer
}
