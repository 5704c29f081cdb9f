package pipeline

// What every provider's stages share: the errors its adapter wraps, and
// running one function over many subjects where what concerns one subject
// stays with it.

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"sync"
)

// ErrNotFound is what a provider adapter wraps when the provider does not
// know a key (a requestNo, an order).
var ErrNotFound = errors.New("not found at the provider")

// ErrDeliveryUnknown is what a sender wraps when it cannot tell whether
// its request reached the provider and cannot ask (a file renamed into a
// drop box on a connection since lost, and no longer there: taken by the
// provider, or removed). The engine records the send's error as the
// effect's LastError; the sender's Query, finding the provider does not
// know the key, answers still pending rather than "never arrived" for
// such an effect (IsDeliveryUnknown), keeping the mark as its reason: only
// the provider's word settles it (or, long after, a person), never a
// second delivery.
var ErrDeliveryUnknown = errors.New("whether it was delivered is unknown")

// IsDeliveryUnknown reports whether an effect's last error (its text, as
// recorded) says its delivery is unknown.
func IsDeliveryUnknown(lastError string) bool {
	return strings.Contains(lastError, ErrDeliveryUnknown.Error())
}

// IsNotFound reports whether err says the provider does not know the key.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ErrRefused is what a provider adapter wraps when the provider answered
// one request with a definite refusal (not transient, not about our
// credentials), or with an answer about its subject that cannot be read:
// asking again as it is cannot help, and it concerns that request's
// subject (a seller, a trade file) only.
var ErrRefused = errors.New("refused by the provider")

// SubjectOnly reports whether err concerns only the subject of the
// request that failed - the provider does not know it, refused it for
// good, or no longer remembers a key that old (ErrPastMemory) - so the
// others go on and the subject is held with err as its reason. A
// configuration error (KindUsage) concerns everyone.
func SubjectOnly(err error) bool {
	return KindOf(err) != KindUsage && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrRefused) || errors.Is(err, ErrPastMemory))
}

// ProviderReject is one row a provider refused, with its reason.
type ProviderReject struct {
	OrderNo string
	Reason  string
}

// ForEach runs fn for every element of xs with at most n at once, and
// returns the errors joined. It stops starting new work once ctx is done,
// or once fn returned a configuration error (KindUsage: refused
// credentials, say), a lost lock (ErrLockLost) or a ledger that could not
// record or be read (ErrNotRecorded, ErrNotRead), which it then returns
// alone: one line, not one per element.
func ForEach[T any](ctx context.Context, n int, xs []T, fn func(T) error) error {
	var (
		mu    sync.Mutex
		errs  []error
		usage error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, n)
	)
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return usage != nil
	}
	for _, x := range xs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			if usage != nil {
				return usage
			}
			return errors.Join(append(errs, ctx.Err())...)
		}
		if stopped() {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(x); err != nil {
				mu.Lock()
				errs = append(errs, err)
				if usage == nil && stopsAll(err) {
					usage = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if usage != nil {
		return usage
	}
	return errors.Join(errs...)
}

// EachFirstAlonePaced runs fn on the first of xs alone, then on the others,
// every one paced by p (the first takes its token too): refused
// credentials or the provider down show on the first question, before any
// other is asked. Once fn fails, the items not yet started are skipped and
// that first error alone is returned (fn fails only for what concerns
// every item).
func EachFirstAlonePaced[T any](ctx context.Context, p *Pacer, xs []T, fn func(T) error) error {
	if len(xs) == 0 {
		return nil
	}
	var alone error
	if err := p.Each(ctx, 1, nil, func(context.Context, int) error {
		alone = fn(xs[0])
		return alone
	}); alone != nil || err != nil {
		return cmp.Or(alone, err)
	}
	var (
		mu    sync.Mutex
		first error
	)
	err := p.Each(ctx, len(xs)-1, nil, func(ctx context.Context, i int) error {
		mu.Lock()
		stopped := first != nil
		mu.Unlock()
		if stopped {
			unobserved(ctx) // skipped: no request, no latency
			return nil
		}
		if err := fn(xs[i+1]); err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
			return err // KindUsage stops what has not started
		}
		return nil
	})
	if first != nil {
		return first
	}
	return err
}

// ConcernsEveryone reports whether a failure to ask about one order says
// nothing about that order but about every one: the run is stopping,
// configuration (refused credentials: KindUsage and the like), or the
// provider unreachable or failing after its retries (an error reporting
// Transient). Anything else (an answer we cannot read, a definite refusal
// of this order) concerns that order alone.
func ConcernsEveryone(ctx context.Context, err error) bool {
	var t interface{ Transient() bool }
	switch {
	case ctx.Err() != nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return true
	case KindOf(err) != KindFailed:
		return true
	case errors.As(err, &t) && t.Transient():
		return true
	}
	return false
}

// OneLine keeps a provider's words on one line in a reason.
func OneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
