// Package httpcall is the attempt loop the provider clients share: the
// per-attempt timeout, exponential backoff with Retry-After honoured and
// bounded, a hook before every attempt (rate limits), and the small
// readers every client needs of an HTTP exchange. What may be retried -
// and a money request is sent at most once unless the provider says it
// was not processed - stays with each client, which knows its provider's
// answers: Loop only carries out its verdicts.
package httpcall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/time/rate"
)

// Policy is how a client paces and bounds its attempts.
type Policy struct {
	Timeout       time.Duration // one attempt, answer included
	RetryBase     time.Duration // first backoff
	RetryMax      time.Duration // longest backoff
	MaxRetries    int           // attempts after the first
	MaxRetryAfter time.Duration // a longer Retry-After ends the call instead
	// MaxRateLimited is how long in all a call waits out answers that
	// say it was rate limited (Verdict.RateLimited) without spending its
	// retries: a provider whose limit is below our rate slows the call,
	// it does not fail it. 0: those answers spend retries like any other
	// (and so they do when MaxRetries allows none).
	MaxRateLimited time.Duration
	Now            func() time.Time
}

// Verdict is what the client makes of one attempt's error.
type Verdict struct {
	Retry      bool          // the same request may be sent again
	RetryAfter time.Duration // what the provider asked us to wait (0: nothing)
	// RateLimited: the provider refused the attempt for its rate (HTTP
	// 429), so it was not processed; see Policy.MaxRateLimited.
	RateLimited bool
}

// Loop calls before and then attempt (under the per-attempt timeout)
// until attempt returns nil, judge says not to retry, the retries are
// spent, or ctx ends. It returns nil or the last error - judge's verdicts
// are the client's; an error of before ends the call as it is. When ctx
// ended the retries, the last error is wrapped with ctx's (errors.As
// still finds the client's error).
func Loop(ctx context.Context, p Policy, before func(context.Context) error, attempt func(context.Context) error, judge func(error) Verdict) error {
	now := p.Now
	if now == nil {
		now = time.Now
	}
	exp := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.RetryBase),
		backoff.WithMaxInterval(p.RetryMax),
		backoff.WithMaxElapsedTime(0), // MaxRetries bounds the call
		backoff.WithClockProvider(clock(now)),
	)
	b := backoff.WithContext(backoff.WithMaxRetries(exp, uint64(max(p.MaxRetries, 0))), ctx)
	b.Reset()
	var limited time.Duration // waited out on rate limits so far
	for {
		if before != nil {
			if err := before(ctx); err != nil {
				return err
			}
		}
		actx, cancel := context.WithTimeout(ctx, p.Timeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		v := judge(err)
		if !v.Retry {
			return err
		}
		var wait time.Duration
		if v.RateLimited && p.MaxRetries > 0 && limited < p.MaxRateLimited {
			// Waited out without spending a retry: the provider's wait,
			// or the first backoff (a call allowed no retries gets none).
			if v.RetryAfter > p.MaxRetryAfter {
				return err
			}
			wait = max(v.RetryAfter, p.RetryBase)
			limited += wait
		} else if wait = b.NextBackOff(); wait == backoff.Stop {
			return gaveUp(ctx, err)
		}
		if v.RetryAfter > wait {
			if v.RetryAfter > p.MaxRetryAfter {
				return err
			}
			wait = v.RetryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return gaveUp(ctx, err)
		case <-t.C:
		}
	}
}

func gaveUp(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (stopped retrying: %w)", err, cerr)
	}
	return err
}

// Turn waits for l's next token, at once when l is nil: the provider
// clients' own rate limit, taken before each attempt. Its error means the
// attempt was not sent, and says so: a run stopped (Ctrl-C, SIGTERM) while
// requests waited their turn ended them with "rate limit: context
// canceled", which read like a limit the provider had refused them on.
func Turn(ctx context.Context, l *rate.Limiter) error {
	if l == nil {
		return nil
	}
	return Waited(ctx, l.Wait(ctx))
}

// Waited is err, the end of a wait for a rate limit's turn (nil: the turn
// came), as Turn says it.
func Waited(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("not sent: stopped while waiting its turn under settle's rate limit: %w", err)
	default: // the turn would come after ctx's deadline, or never (a burst of 0)
		return fmt.Errorf("not sent: settle's rate limit gives it no turn: %w", err)
	}
}

// NotSent reports whether a transport error means the connection was never
// made, so nothing was sent; any other may have left after the request.
func NotSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// SendOnce keeps Go's transport from sending req again by itself: a
// request whose body it can rewind (GetBody, which http.NewRequest sets for
// a bytes.Reader) is sent again, unasked, when an HTTP/2 server or proxy
// resets its stream with PROTOCOL_ERROR after it arrived (golang/go#47635),
// and a money request would reach the provider twice without a status
// query between. Without GetBody the transport returns the error instead
// (and, over HTTP/1, no longer resends a request it could not write on a
// reused connection: that too comes back as an error, an unknown outcome
// resolved by the status query). Call it on requests that must go out at
// most once per attempt.
func SendOnce(req *http.Request) {
	req.GetBody = nil
}

// RetryAfter reads the Retry-After of a 429 or a 503 (seconds or an HTTP
// date, against the answer's Date header, the server's clock, or now when
// it has none; seconds past what a Duration holds are its longest); 0 for
// any other answer. A 503's says how long the
// service (or a proxy or load balancer before it) expects to be down
// (RFC 9110 section 10.2.3): a query retried sooner only asks again for
// the same refusal, and one it asks to wait longer than
// Policy.MaxRetryAfter ends the call. Whether a 503 may be retried at all
// stays with each client (a money request that got one is asked about,
// never sent again).
func RetryAfter(resp *http.Response, now func() time.Time) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	v := resp.Header.Get("Retry-After")
	if s, err := strconv.Atoi(v); (err == nil || errors.Is(err, strconv.ErrRange)) && s > 0 {
		// Seconds a Duration cannot hold (past 292 years) are the
		// longest wait, past any MaxRetryAfter: multiplied, they wrapped
		// into a short or a negative wait, and the call was retried at
		// once (found by FuzzRetryAfter).
		if err != nil || s > math.MaxInt64/int(time.Second) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		// The date is on the server's clock: measured from its Date, the
		// wait is what it asked whatever ours reads (a machine minutes
		// behind waited minutes more, past MaxRetryAfter: the call ended).
		from, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			from = now()
		}
		return max(t.Sub(from), 0)
	}
	return 0
}

// JSONProblem describes a JSON decoding error without quoting the document
// (it may hold what must not be logged); other errors are described by
// otherwise.
func JSONProblem(err error, otherwise string) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q: a JSON %s where %s was expected", te.Field, te.Value, te.Type)
	}
	return otherwise
}

// clock adapts a time source to backoff.Clock.
type clock func() time.Time

func (f clock) Now() time.Time { return f() }

// Clip keeps a provider's text short in our errors, the ledger and the
// reports: at most 200 bytes of it, cut between characters, then "...";
// bytes that are not UTF-8, and NUL (JSON's "\u0000" decodes to one),
// become U+FFFD, as the ledger's PostgreSQL refuses to store them (one
// order's answer would otherwise stop the stage that records it).
func Clip(s string) string {
	const max = 200
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// ShowURL is raw, a configured URL, quoted as an error may name it: with its
// password, if it has one, as "xxxxx" (url.URL.Redacted). One that does
// not parse is not shown at all, only why it does not parse: it may hold
// a password url.Parse could not find (url.Parse's own error quotes it
// whole). Errors go to the logs and the Job's status.
func ShowURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Sprintf("(not shown: it does not parse: %v)", err)
	}
	return strconv.Quote(u.Redacted())
}

// Loopback reports whether host (a URL's Hostname) is this machine:
// "localhost" or a loopback address. Plain http is for such a host only
// (the simulator, a test's server): an answer read over plain http from
// anywhere else could be anyone's, and the answers the providers' clients
// act on are paid from.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
