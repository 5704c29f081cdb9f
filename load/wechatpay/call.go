package wechatpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/time/rate"

	"github.com/settlekit/settle/internal/httpcall"
	"github.com/settlekit/settle/pipeline"
)

// maxAnswer bounds what we read of an API answer.
const maxAnswer = 4 << 20

// spec describes one call.
type spec struct {
	api      string // the API's name in errors, e.g. "orders"
	method   string
	target   *url.URL // absolute
	key      string   // what the call is about, for errors
	subMchID string   // for the per-sub-merchant limiter
	body     []byte   // nil: no body
	once     bool     // not safe to resend blindly: a lost answer is unknown
	keyed    bool     // idempotent by out_order_no: SYSTEM_ERROR may be resent
	file     bool     // a file download: the answer is not JSON and may be unsigned
	limit    int64    // answer size limit; default maxAnswer
}

// answer is a verified HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
	signed bool
}

func (sp spec) fail(kind failure, err error) *Error {
	return &Error{API: sp.api, Key: sp.key, Err: err, kind: kind}
}

// spec starts a call of api at path (below the base URL) with query q.
func (c *Client) spec(api, method, path string, q url.Values, key, subMchID string) spec {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return spec{api: api, method: method, target: &u, key: key, subMchID: subMchID}
}

// call sends in (nil: no body) as JSON and decodes a successful answer's
// JSON into out (nil: no answer data wanted).
func (c *Client) call(ctx context.Context, sp spec, in, out any) error {
	if in != nil {
		body, err := json.Marshal(in)
		if err != nil {
			return sp.fail(failLocal, err)
		}
		sp.body = body
	}
	_, err := c.do(ctx, sp, func(a answer) *Error {
		if out == nil || a.status == http.StatusNoContent {
			return nil
		}
		if err := json.Unmarshal(a.body, out); err != nil {
			return sp.fail(failBadAnswer, fmt.Errorf("%w: %s", ErrAnswer, httpcall.JSONProblem(err, "invalid JSON")))
		}
		return nil
	})
	return err
}

// do runs the call under the rate limits and the per-attempt timeout,
// retrying what may be retried with exponential backoff (Retry-After
// honoured), at most MaxRetries times. accept checks a successful answer.
func (c *Client) do(ctx context.Context, sp spec, accept func(answer) *Error) (answer, error) {
	var got answer
	applied := false // an attempt may have been processed
	once := func(ctx context.Context) error {
		a, e := c.attempt(ctx, sp)
		if e == nil {
			e = accept(a)
		}
		if e != nil {
			if e.mayBeApplied() {
				applied = true
				c.final(sp, e) // now, so that the message says so however the call ends
			}
			return e
		}
		got = a
		return nil
	}
	judge := func(err error) httpcall.Verdict {
		e := err.(*Error)
		return httpcall.Verdict{Retry: e.retryable(sp.once, sp.keyed), RetryAfter: e.RetryAfter, RateLimited: e.HTTPStatus == http.StatusTooManyRequests}
	}
	err := httpcall.Loop(ctx, httpcall.Policy{Timeout: c.cfg.Timeout, RetryBase: c.cfg.RetryBase, RetryMax: c.cfg.RetryMax,
		MaxRetries: c.cfg.MaxRetries, MaxRetryAfter: c.cfg.MaxRetryAfter, MaxRateLimited: c.cfg.MaxRateLimited, Now: c.cfg.Now},
		func(ctx context.Context) error { return c.wait(ctx, sp) }, once, judge)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && sp.once && applied && !errors.Is(e.Err, ErrUnknownOutcome) {
			// The call ended before a resend (rate limit, context) after an
			// attempt that may have been processed: its outcome is unknown.
			e.Err = unknown(e.Err)
		}
		if e != nil {
			if what := e.credentials(); what != "" {
				return answer{}, pipeline.E(pipeline.KindUsage, "WeChat Pay", fmt.Errorf("%s: %w", what, err))
			}
		}
		return answer{}, err
	}
	return got, nil
}

// final marks the last error of a request that is not safe to resend as
// unknown when it may have been applied.
func (c *Client) final(sp spec, e *Error) *Error {
	if sp.once && e.mayBeApplied() && !errors.Is(e.Err, ErrUnknownOutcome) {
		e.Err = unknown(e.Err)
	}
	return e
}

// wait takes a token from the service provider's bucket and the
// sub-merchant's, or fails before anything is sent.
func (c *Client) wait(ctx context.Context, sp spec) error {
	if err := ctx.Err(); err != nil {
		return sp.fail(failLocal, err)
	}
	if err := httpcall.Turn(ctx, c.cfg.Limiter); err != nil {
		return sp.fail(failLocal, err)
	}
	if err := c.waitSub(ctx, sp.subMchID); err != nil {
		return sp.fail(failLocal, httpcall.Waited(ctx, err))
	}
	return nil
}

// waitSub takes a token from subMchID's bucket (none when
// SubMerchantLimit is 0 or the request names no sub-merchant). The token
// is reserved under c.mu, where dropFull looks, so a bucket is never
// forgotten between being found and being drawn from.
func (c *Client) waitSub(ctx context.Context, subMchID string) error {
	if c.cfg.SubMerchantLimit == 0 || subMchID == "" {
		return nil
	}
	now := time.Now()
	c.mu.Lock()
	l := c.subs[subMchID]
	if l == nil {
		if len(c.subs) >= c.sweepAt {
			c.dropFull(now)
			c.sweepAt = max(subSweepFrom, 2*len(c.subs))
		}
		l = rate.NewLimiter(c.cfg.SubMerchantLimit, c.cfg.SubMerchantBurst)
		c.subs[subMchID] = l
	}
	r := l.ReserveN(now, 1)
	c.mu.Unlock()
	if !r.OK() {
		return fmt.Errorf("sub-merchant %s: no token can be had (burst %d)", subMchID, c.cfg.SubMerchantBurst)
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}

// dropFull forgets the sub-merchants' buckets that are full at now: a full
// bucket is what a new one is, so a sub-merchant asked again draws on the
// same tokens, and the client holds a bucket for the sub-merchants asked
// lately rather than for every one of the day (2,000 at a million orders).
// The caller holds c.mu.
func (c *Client) dropFull(now time.Time) {
	for id, l := range c.subs {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(c.subs, id)
		}
	}
}

// subSweepFrom is how many sub-merchants' buckets the client holds before
// it first looks for full ones to drop; after a sweep it looks again when
// the buckets are twice as many as it kept, so the sweeps cost a constant
// per bucket made.
const subSweepFrom = 64
