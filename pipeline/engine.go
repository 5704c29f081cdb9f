package pipeline

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Limiter paces requests to a provider: Wait blocks until one more request
// may start (a token bucket: cmd wires *rate.Limiter), or ctx is done.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Limits are what a provider allows, as the effect engine keeps to them.
type Limits struct {
	// Limit is the provider's token bucket; nil: no limit but MaxInFlight.
	Limit Limiter
	// Rate is Limit's rate in requests per second. With the latency
	// observed it sizes how many requests are in flight: by Little's law
	// rate x latency are needed to reach the rate, and a few more hide
	// the latency's variance (the latency taken at most twice the
	// fastest seen of late: what is only queueing widens nothing).
	// 0: MaxInFlight.
	Rate float64
	// Lane returns the bucket of one lane under the provider's (a
	// sub-merchant the provider limits on its own); nil, or a nil
	// Limiter: the lane has no limit of its own.
	Lane func(lane string) Limiter
	// LaneRate is the rate of Lane's buckets, in requests per second: it
	// sizes how many calls of EachAsNeeded one lane may hold at once (they
	// wait on its bucket) as Rate sizes the window, so that a few busy
	// lanes never hold every call's place. 0: the window.
	LaneRate float64
	// MaxInFlight caps the requests in flight at once (default 256).
	MaxInFlight int
}

// DefaultMaxInFlight is the cap on requests in flight when Limits gives
// none.
const DefaultMaxInFlight = 256

// Pacer starts requests to one provider as fast as its Limits allow, with
// the number in flight sized by rate x observed latency (never a fixed
// worker count). One Pacer is shared by everything that asks the same
// provider in a run, so that together they keep to its limits.
type Pacer struct {
	limits Limits

	mu      sync.Mutex
	lanes   map[string]Limiter
	latency time.Duration // exponentially weighted moving average
	// The least latency observed in this period of fastestPeriod and in
	// the one before (0: none yet): what a request takes when nothing
	// queues. The window is sized by at most twice it, so that latency
	// that is only waiting (for a CPU, a connection, the provider's own
	// queue) does not widen the window, which would queue more still.
	fastest, fastestBefore time.Duration
	periodBegan            time.Time
	now                    func() time.Time
	inFlight               int
	peak                   int
	calls                  int            // calls of EachAsNeeded running
	laneCalls              map[string]int // the same, per lane
	// Who waits for a place in flight (acquire), and for a call's place
	// (enterCall), in the order they came: a place freed is given to the
	// first that may take it, under p.mu, so that thousands of lanes
	// waiting cost nothing until one may go (a broadcast woke every
	// waiter at every request: with a lane per sub-merchant, most of the
	// CPU of a day of 20,000 sub-merchants).
	inFlightQ, callQ list.List // of *waiter
}

// waiter is one goroutine waiting in acquire or enterCall.
type waiter struct {
	lane    string        // enterCall's lane
	granted chan struct{} // closed when its place is taken for it
}

// NewPacer returns a Pacer keeping to l.
func NewPacer(l Limits) *Pacer {
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	return &Pacer{limits: l, lanes: map[string]Limiter{}, laneCalls: map[string]int{}, now: time.Now}
}

// fastestPeriod is how long the least latency observed is kept: a
// provider that became slower for good widens the window within two
// periods.
const fastestPeriod = 10 * time.Second

// pacerOr returns p, or an unlimited Pacer when p is nil.
func pacerOr(p *Pacer) *Pacer {
	if p == nil {
		return NewPacer(Limits{})
	}
	return p
}

// window is how many requests may be in flight now:
// ceil(rate x latency x 1.5) + 1, within [1, MaxInFlight], where latency
// is the moving average but at most twice the fastest of the last
// periods - a bound that never takes the window below
// windowBoundedFrom. Until a latency is observed it is MaxInFlight (the
// bucket still paces).
func (p *Pacer) window() int {
	l := p.limits
	if l.Rate <= 0 || p.latency <= 0 {
		return l.MaxInFlight
	}
	n := p.sized(l.Rate, p.latency)
	if b := p.boundedLatency(); b < p.latency {
		n = max(p.sized(l.Rate, b), min(n, windowBoundedFrom))
	}
	return n
}

// boundedLatency is the moving average of the latency, at most twice the
// fastest of the last periods.
func (p *Pacer) boundedLatency() time.Duration {
	if f := p.fastestRecent(); f > 0 {
		return min(p.latency, 2*f)
	}
	return p.latency
}

// sized is ceil(rate x lat x 1.5) + 1 within [1, MaxInFlight].
func (p *Pacer) sized(rate float64, lat time.Duration) int {
	return max(1, min(int(math.Ceil(rate*lat.Seconds()*1.5))+1, p.limits.MaxInFlight))
}

// laneWindow is how many calls of EachAsNeeded one lane may hold at once:
// sized by LaneRate as the window by Rate (taking a second for the
// latency until one is observed), at most the window.
func (p *Pacer) laneWindow() int {
	w := p.window()
	if r := p.limits.LaneRate; r > 0 {
		lat := time.Second
		if p.latency > 0 {
			lat = p.boundedLatency()
		}
		w = min(w, p.sized(r, lat))
	}
	return w
}

// callCap is how many calls of EachAsNeeded may run at once: twice the
// window, and no fewer than twice windowBoundedFrom (a call holds its
// place through its ledger work too, which no latency observed counts),
// within twice MaxInFlight.
func (p *Pacer) callCap() int {
	return 2 * min(max(p.window(), windowBoundedFrom), p.limits.MaxInFlight)
}

// windowBoundedFrom is the window below which the fastest latency bounds
// nothing: so few requests in flight cost no memory to speak of, and
// latencies of a millisecond or two (a provider in the same process)
// vary by more than twice from the scheduling alone.
const windowBoundedFrom = 32

// fastestRecent is the least latency of this period and the one before
// (0: none observed).
func (p *Pacer) fastestRecent() time.Duration {
	if p.fastestBefore > 0 && (p.fastest == 0 || p.fastestBefore < p.fastest) {
		return p.fastestBefore
	}
	return p.fastest
}

// Window reports how many requests may be in flight now.
func (p *Pacer) Window() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.window()
}

// Latency reports the latency observed (moving average).
func (p *Pacer) Latency() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency
}

// PeakInFlight reports the most requests that were in flight at once.
func (p *Pacer) PeakInFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

func (p *Pacer) lane(key string) Limiter {
	if p.limits.Lane == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.lanes[key]
	if !ok {
		l = p.limits.Lane(key)
		p.lanes[key] = l
	}
	return l
}

// acquire takes a place in flight, waiting while the window is full.
func (p *Pacer) acquire(ctx context.Context) error {
	return p.await(ctx, &p.inFlightQ, &waiter{}, p.takeInFlight, p.giveInFlight)
}

func (p *Pacer) takeInFlight(*waiter) bool {
	if p.inFlight >= p.window() {
		return false
	}
	p.inFlight++
	p.peak = max(p.peak, p.inFlight)
	return true
}

func (p *Pacer) giveInFlight(*waiter) { p.inFlight-- }

// await takes w's place with take, or waits in q until grant takes it
// for w. Stopped by ctx, it gives back a place taken meanwhile (give).
// p.mu is not held.
func (p *Pacer) await(ctx context.Context, q *list.List, w *waiter, take func(*waiter) bool, give func(*waiter)) error {
	p.mu.Lock()
	if q.Len() == 0 && take(w) {
		p.mu.Unlock()
		return nil
	}
	w.granted = make(chan struct{})
	e := q.PushBack(w)
	p.grant() // a place may be free that the waiters before it cannot take
	p.mu.Unlock()
	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		select {
		case <-w.granted:
			give(w) // taken for it as it stopped: given back
			p.grant()
		default:
			q.Remove(e)
		}
		return ctx.Err()
	}
}

// grant gives the places free to the waiters, in order: in flight while
// the window has room; a call's place while there is room in all, to
// each waiter whose lane has room. p.mu is held.
func (p *Pacer) grant() {
	for e := p.inFlightQ.Front(); e != nil && p.takeInFlight(nil); e = p.inFlightQ.Front() {
		close(p.inFlightQ.Remove(e).(*waiter).granted)
	}
	for e := p.callQ.Front(); e != nil && p.calls < p.callCap(); {
		next := e.Next()
		if w := e.Value.(*waiter); p.takeCall(w) {
			close(p.callQ.Remove(e).(*waiter).granted)
		}
		e = next
	}
}

// release gives the place back with the latency the request took. A
// request that failed (an error) is not observed: its time may be no
// round trip's (a connection refused at once) and would narrow the
// window, or a timeout's, and widen it.
func (p *Pacer) release(took time.Duration, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	if failed {
		p.grant()
		return
	}
	if p.latency == 0 {
		p.latency = took
	} else {
		p.latency = (4*p.latency + took) / 5
	}
	if now := p.now(); now.Sub(p.periodBegan) >= fastestPeriod {
		p.fastestBefore, p.fastest = p.fastest, took
		if now.Sub(p.periodBegan) >= 2*fastestPeriod {
			p.fastestBefore = 0 // a period went by with nothing observed
		}
		p.periodBegan = now
	} else if took < p.fastest || p.fastest == 0 {
		p.fastest = took
	}
	p.grant()
}

// tokens waits for one token of the lane's bucket, then one of the
// provider's.
func (p *Pacer) tokens(ctx context.Context, lane Limiter) error {
	if lane != nil {
		if err := lane.Wait(ctx); err != nil {
			return err
		}
	}
	if p.limits.Limit != nil {
		if err := p.limits.Limit.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// start waits until one more request in the lane may start: the lane's
// bucket, the provider's, then a place in flight.
func (p *Pacer) start(ctx context.Context, lane Limiter) error {
	if err := p.tokens(ctx, lane); err != nil {
		return err
	}
	return p.acquire(ctx)
}

// enterCall waits until one more call of EachAsNeeded may run in lane:
// at most the lane's window (laneWindow: calls waiting on a busy lane's
// bucket hold no more places than its rate needs) and callCap in all (the
// waiters are served in turn, so the lanes share the places).
func (p *Pacer) enterCall(ctx context.Context, lane string) error {
	return p.await(ctx, &p.callQ, &waiter{lane: lane}, p.takeCall, p.giveCall)
}

func (p *Pacer) takeCall(w *waiter) bool {
	if p.calls >= p.callCap() || p.laneCalls[w.lane] >= p.laneWindow() {
		return false
	}
	p.calls++
	p.laneCalls[w.lane]++
	return true
}

func (p *Pacer) giveCall(w *waiter) {
	p.calls--
	if p.laneCalls[w.lane]--; p.laneCalls[w.lane] == 0 {
		delete(p.laneCalls, w.lane)
	}
}

func (p *Pacer) leaveCall(lane string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.giveCall(&waiter{lane: lane})
	p.grant()
}

// errStopWave is returned by a call of Each or EachAsNeeded to stop
// starting new calls, the calls started let finish, with no error: the
// engine's wave of questions once one got no answer after the wait.
var errStopWave = errors.New("the wave is stopped")

// errPaceStopped is Pace's error once its EachAsNeeded stops starting
// requests (ctx done, or a configuration error): the request was not
// sent.
var errPaceStopped = fmt.Errorf("stopped before the request: %w", context.Canceled)

// ticket is one call of EachAsNeeded: the requests it makes take their
// tokens through Pace; its place in flight is taken with the first. A call
// of Each has one too (paced: its tokens and place were taken before it
// started, and Pace returns at once), to be marked unobserved.
type ticket struct {
	p     *Pacer
	lane  Limiter
	stop  context.Context // EachAsNeeded's: done, nothing new starts
	paced bool            // a call of Each: its tokens and place taken before it started

	mu         sync.Mutex
	began      time.Time // when the call took its place in flight; zero: not yet
	unobserved bool      // its time is no request's latency (unobserved)
}

type ticketKey struct{}

// take waits for the tokens of one request, and the call's place in
// flight with its first.
func (t *ticket) take() error {
	if t.paced {
		return nil
	}
	if t.stop.Err() != nil || t.p.tokens(t.stop, t.lane) != nil {
		return errPaceStopped
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.began.IsZero() {
		if t.p.acquire(t.stop) != nil {
			return errPaceStopped
		}
		if t.stop.Err() != nil {
			// Granted as the Each stopped (a place a stopping call gave
			// back is handed to the next waiter): given back, not used.
			t.p.release(0, true)
			return errPaceStopped
		}
		t.began = time.Now()
	}
	return nil
}

// done gives the call's place in flight back, if it took one, with the
// time since (the latency of its requests: calls that sent nothing do not
// count), not observed when the call failed or was marked unobserved.
func (t *ticket) done(failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.began.IsZero() {
		t.p.release(time.Since(t.began), failed || t.unobserved)
	}
}

// unobserved marks the call of Each or EachAsNeeded that ctx belongs to
// as one whose time is no request's latency: a request that failed (its
// error may have come at once, a connection refused, or after a timeout)
// or a call that sent nothing after all. Its place is given back as
// always; its time moves no window.
func unobserved(ctx context.Context) {
	if t, _ := ctx.Value(ticketKey{}).(*ticket); t != nil {
		t.mu.Lock()
		t.unobserved = true
		t.mu.Unlock()
	}
}

// Pace waits, inside a call of Pacer.EachAsNeeded, until one more request
// of that call may start under the provider's limits and its lane's: it
// takes one token of each bucket per request (call it before every
// request, a resend included), and the call's place in flight with the
// first. Elsewhere (inside Pacer.Each, whose calls are paced before they
// start, or outside any pacer) it returns at once. Its error means the
// request must not be sent: the Each is stopping.
func Pace(ctx context.Context) error {
	t, _ := ctx.Value(ticketKey{}).(*ticket)
	if t == nil {
		return nil
	}
	return t.take()
}

// Each runs fn(ctx, i) for i in [0, n), each start paced by the
// provider's limits and the lane of i (lane nil: one lane): every call
// takes a token as one request, whether it sends one or not (see
// EachAsNeeded for calls that may send none). It returns
// the errors joined. Lanes go side by side (up to MaxInFlight of them,
// and no fewer than DefaultMaxInFlight, at once), so that one slow lane
// never holds back the others. It stops starting new calls once ctx is
// done or fn returned a configuration error (KindUsage: refused
// credentials), a lost lock (ErrLockLost) or a ledger that could not
// record or be read (ErrNotRecorded, ErrNotRead), which it then returns
// alone: one line, not one per element. So too once fn returned an error
// wrapping ErrNotAnswering (the stage's provider is not answering: Ask),
// which it returns once, with the others. Calls already started finish with ctx: a request that
// has left is let finish (see ApplyEffect).
func (p *Pacer) Each(ctx context.Context, n int, lane func(i int) string, fn func(ctx context.Context, i int) error) error {
	return p.each(ctx, n, lane, fn, true, 0)
}

// EachAtMost is Each with at most most calls running at once (most > 0),
// whatever the provider's limits allow: for calls that each hold much
// (a bill read whole), the next started as one ends. A call waits for its
// place before it takes its tokens, so that stopping the Each leaves none
// waiting to start.
func (p *Pacer) EachAtMost(ctx context.Context, n, most int, lane func(i int) string, fn func(ctx context.Context, i int) error) error {
	return p.each(ctx, n, lane, fn, true, most)
}

// EachAsNeeded is Each for calls that may send no request (an item found
// final in the ledger, a re-run of a finished day): a call takes no token
// until it calls Pace, before each request it sends, so a call that sends
// nothing waits on no bucket, and its time does not count as latency.
// Calls run side by side up to the lane's window per lane (Limits.LaneRate)
// and twice the window in all (no fewer than 64, no more than twice
// MaxInFlight); the requests keep every limit of Each.
func (p *Pacer) EachAsNeeded(ctx context.Context, n int, lane func(i int) string, fn func(ctx context.Context, i int) error) error {
	return p.each(ctx, n, lane, fn, false, 0)
}

// each is Each (paced: every call takes its tokens and place in flight
// before it starts) or EachAsNeeded (its calls take them through Pace),
// with at most most calls running at once when most > 0 (EachAtMost).
func (p *Pacer) each(ctx context.Context, n int, lane func(i int) string, fn func(ctx context.Context, i int) error, paced bool, most int) error {
	if n == 0 {
		return nil
	}
	var (
		mu           sync.Mutex
		errs         []error
		usage        error
		notAnswering error // the first call's that wraps ErrNotAnswering
		wg           sync.WaitGroup
	)
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	lanes := map[string][]int{}
	var order []string
	for i := 0; i < n; i++ {
		k := ""
		if lane != nil {
			k = lane(i)
		}
		if _, ok := lanes[k]; !ok {
			order = append(order, k)
		}
		lanes[k] = append(lanes[k], i)
	}
	// A lane is walked by one goroutine, at most MaxInFlight of them at
	// once and no fewer than DefaultMaxInFlight (each takes the next lane
	// when its own is done): lanes still go side by side, enough of them
	// to reach the provider's rate under their own buckets (256 lanes of
	// 30/s are 25 times a provider's 300/s), but a wave over thousands of
	// lanes does not hold a goroutine, and its stack, for each.
	var next int              // order's next lane to walk, under mu
	var running chan struct{} // a place for each call running (most > 0)
	if most > 0 {
		running = make(chan struct{}, most)
	}
	walk := func(k string, idx []int) {
		lim := p.lane(k)
		for _, i := range idx {
			if stopCtx.Err() != nil {
				return
			}
			if running != nil {
				select {
				case running <- struct{}{}:
				case <-stopCtx.Done():
					return
				}
			}
			leave := func() {
				if running != nil {
					<-running
				}
			}
			t := &ticket{p: p, lane: lim, stop: stopCtx, paced: paced} // paced: Pace within it returns at once
			if paced {
				if p.start(stopCtx, lim) != nil {
					leave()
					return
				}
				if stopCtx.Err() != nil {
					// Its token and place given as the Each stopped (as
					// ticket.take): the place given back, the call not
					// started.
					p.release(0, true)
					leave()
					return
				}
			} else {
				if p.enterCall(stopCtx, k) != nil {
					leave()
					return
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer leave()
				began := time.Now()
				err := fn(context.WithValue(ctx, ticketKey{}, t), i)
				// The error first, then the places: a call that stops the
				// Each stops it before its place in flight is handed to a
				// call waiting on it. The other way round, each call given
				// the place of one that failed could fail the same way
				// before any of them stopped the Each: under load, dozens
				// of requests went on to be marked sent (and sent) after
				// the ledger failed to record the first (found by a
				// mutation review's repeated runs, -race).
				if errors.Is(err, errStopWave) {
					stop() // nothing new starts; the calls started finish
					err = nil
				}
				if err != nil && !errors.Is(err, errPaceStopped) { // errPaceStopped: the reason is returned below
					mu.Lock()
					switch {
					case errors.Is(err, ErrNotAnswering):
						// The provider is not answering (Ask): nothing new
						// starts, and it is said once.
						if notAnswering == nil {
							notAnswering = err
						}
						stop()
					default:
						errs = append(errs, err)
						if usage == nil && stopsAll(err) {
							usage = err
							stop()
						}
					}
					mu.Unlock()
				}
				if paced {
					t.mu.Lock()
					p.release(time.Since(began), err != nil || t.unobserved)
					t.mu.Unlock()
				} else {
					t.done(err != nil)
					p.leaveCall(k)
				}
			}()
		}
	}
	for range min(len(order), max(p.limits.MaxInFlight, DefaultMaxInFlight)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stopCtx.Err() == nil {
				mu.Lock()
				if next == len(order) {
					mu.Unlock()
					return
				}
				k := order[next]
				next++
				mu.Unlock()
				walk(k, lanes[k])
			}
		}()
	}
	wg.Wait()
	if usage != nil {
		return usage
	}
	if notAnswering != nil {
		errs = append(errs, notAnswering)
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ErrStillProcessing is wrapped by the error of a stage whose effects were
// still processing at the provider when its wait was over: they are left
// sent or unknown in the ledger, and a re-run resolves them by query.
var ErrStillProcessing = errors.New("still processing at the provider")

// Engine drives effects through the intent-first protocol (ApplyEffect)
// under a provider's limits. The ledger is the queue: the effects fed to
// RunFeed are those a stage planned or found not final; a run stopped anywhere
// leaves each one recorded in its state, and the next run picks them up.
//
// Planned effects are sent as fast as the Pacer allows; the engine never
// waits on one request. Pending ones (sent, unknown, still processing)
// are swept by a poller in waves, each paced under the same limits: the
// first after FirstPoll (the provider's typical processing delay), later
// ones every Poll. A query adopts the provider's answer; "not found"
// sends again with the same key (ApplyEffect). A new key is never made
// here: a failed effect is final, and its stage plans the next attempt.
//
// A provider that does not answer at all stops it: once NotAnsweringAfter
// requests in a row (questions or sends, in the order they end; with the
// stage's breaker in its context, WithBreaker, the stage's own requests
// through Ask too, its feed's and its Final's and Error's included) got
// no answer (ErrNoAnswer: no connection, or none came back, after the
// client's own retries), it reads no more of its feed, sends and asks
// nothing more, cuts the questions in flight (a question changes
// nothing) and lets the sends in flight finish; every effect stays as the
// ledger holds it (planned ones unsent, sent ones pending, an unanswered
// send unknown: asked by its key on the next run, never sent blindly),
// and EngineResult.StillProcessing names the provider as not answering
// (exit 1). Before, each request went through its client's retries, a
// window of them at a time, whatever the ones before it had found: a
// re-run whose every effect was pending asked each through its retries
// before the wait even began (27 questions of 5 attempts of 10 s: about
// 9 minutes), and sends before the wait each spent their retries too.
type Engine struct {
	Store EffectStore
	// Sender returns who sends and queries e.
	Sender func(e Effect) EffectSender
	Pacer  *Pacer
	// Lane names e's lane under the provider (a sub-merchant); nil: one.
	Lane func(e Effect) string
	// FirstPoll is how long after sending an effect it is first asked
	// about (default Poll); Poll how long between later queries (default
	// 1s).
	FirstPoll, Poll time.Duration
	// Wait bounds the wait for final outcomes once the effects given
	// are sent (RunFeed: its last page): no wave of queries starts after it
	// (zero: no bound), but for the one question every request sent gets,
	// and once it is over the first question that gets no answer stops
	// the questions (a provider that accepts connections and never answers
	// holds the stage for one question's retries, not one a pending
	// effect). What is still pending then is returned. A run thus takes
	// the time to send at the provider's limits plus about Wait, however
	// many effects wait on the provider. A provider that does not answer
	// at all stops the engine sooner, waited on or not (NotAnsweringAfter).
	Wait time.Duration
	// Window is how many pending effects (sent, not final) RunFeed holds
	// before it reads the next page of its feed; 0: enough to keep
	// sending at the pacer's rate through FirstPoll twice over, and at
	// least DefaultWindow.
	Window int
	// Final is called once for every effect that is final, when it is
	// (effects given final are passed at once). Its error is the effect's.
	Final func(ctx context.Context, e Effect) error
	// Error is called when e could not be sent or asked about (err is
	// not a cancellation, nor the ledger's failure - ErrNotRecorded,
	// ErrNotRead, ErrLockLost - which stops RunFeed without it): nil means
	// the stage handled it (held the subject) and the effect leaves the
	// engine as it is; an error is returned by RunFeed (the others go on
	// unless it is KindUsage, which stops it). nil Error: every such err is
	// returned. But with a Wait, a status query that got no answer (the
	// provider could not be asked) whose error Error returns, unless it
	// concerns its subject alone (SubjectOnly) or stops all, is not
	// returned: its effect stays pending as it was, counted unanswered in
	// the progress and in EngineResult.NoAnswer.
	Error func(ctx context.Context, e Effect, err error) error
}

// EngineResult is what a RunFeed did.
type EngineResult struct {
	Pending []Effect // not final when the wait was over: left in the ledger as they are
	Sent    int      // requests sent (first sends and sends again with the same key)
	Waves   int      // waves of queries
	// NoAnswer is, by id, the error of the last question about a pending
	// effect when that question got no answer (the provider could not be
	// asked): its outcome is as unknown as before it.
	NoAnswer map[int64]string
	// Unasked counts the pending effects left unasked: once the wait is
	// over, the first question that gets no answer stops the questions (a
	// provider that does not answer holds the stage no longer), those of
	// its wave not asked yet and those due later left as they are; so
	// too once the provider stopped answering (NotAnswering).
	Unasked int
	// NotAnswering, when not empty, says the provider stopped answering:
	// NotAnsweringAfter requests to it in a row got no answer
	// (ErrNoAnswer), and it is the last one's error. The engine then
	// stopped: the effects it had are in Pending as the ledger holds them
	// (planned ones never sent), and it read no more of its feed (Unread).
	NotAnswering string
	// Unread reports that the engine stopped before its feed was done
	// (NotAnswering): the effects the feed had not given are in the
	// ledger as they were, for the next run.
	Unread bool
}

// Feed returns the next page of effects for RunFeed to drive (read from
// the ledger, say); an empty page ends it.
type Feed func(ctx context.Context) ([]Effect, error)

// DefaultWindow is how many pending effects RunFeed holds, at least,
// before it reads the next page of its feed (Engine.Window).
const DefaultWindow = 10000

// window is how many pending effects RunFeed holds before it reads the
// next page: Window, or enough to keep sending at the pacer's rate
// through the first poll's delay twice over, and at least DefaultWindow.
func (en *Engine) window(p *Pacer, first time.Duration) int {
	if en.Window > 0 {
		return en.Window
	}
	return max(DefaultWindow, int(2*p.limits.Rate*first.Seconds()))
}

// RunFeed drives the effects of feed until each is final, handled, or the
// wait is over, and returns the errors joined (KindUsage alone). A
// cancelled ctx stops it: nothing new starts, requests in flight finish
// and are recorded.
//
// A page of feed is read when fewer than the window's effects are pending
// (sent and not final), so that the engine holds about a window of
// effects however many the feed gives, and keeps sending at the
// provider's limits while earlier pages wait on the provider. The wait
// (Wait) begins when the feed is done and its last page sent. A feed's
// error is returned with the others; the effects already given go on to
// their end.
//
// Once NotAnsweringAfter requests in a row got no answer (ErrNoAnswer)
// it stops, at any point (reading the feed, sending, asking, waiting):
// no page more is read, nothing more is sent or asked (the questions in
// flight are cut, the sends in flight finish), and every effect it holds
// is returned in Pending as the ledger holds it - planned ones unsent,
// an unanswered send unknown, a pending one as it was - with
// EngineResult.NotAnswering and Unread saying so. Nothing is made final
// without an answer, nothing is sent again blindly: the next run asks
// about each sent one by its key. The requests are counted on ctx's
// breaker when the stage put one there (WithBreaker: the stage's own
// requests through Ask count with the engine's, and a breaker open
// already reads no feed at all), else on one of its own. A feed's error
// that wraps ErrNotAnswering (the stage's planning of the page asked the
// provider) stops it alike, not returned: the page it gave is held as
// the others, the rest of the feed unread.
func (en *Engine) RunFeed(ctx context.Context, feed Feed) (EngineResult, error) {
	var res EngineResult
	br := breakerOf(ctx) // the stage's (WithBreaker), its own requests counted with the engine's
	if br == nil {
		ctx = WithBreaker(ctx)
		br = breakerOf(ctx)
	}
	p := pacerOr(en.Pacer)
	poll := en.Poll
	if poll <= 0 {
		poll = time.Second
	}
	first := en.FirstPoll
	if first <= 0 {
		first = poll
	}
	window := en.window(p, first)
	var (
		mu       sync.Mutex
		pending  []waiting
		errs     []error
		deadline time.Time
		sent     time.Time              // when the feed was done and its effects sent
		fed      bool                   // the feed is done
		failed   = map[int64]int{}      // sends in a row that got no answer, by effect (under mu)
		noAnswer = map[int64]noAnswer{} // questions in a row that got no answer, by effect (under mu)
	)
	// The progress lines count the effects sent and awaiting their
	// outcome, as they stand at each turn.
	prog, shown := ProgressFrom(ctx), 0
	awaiting := func(n int) { prog.AddAwaiting(n - shown); shown = n }
	defer awaiting(0)
	laneOf := func([]Effect) func(int) string { return nil }
	if en.Lane != nil {
		laneOf = func(w []Effect) func(int) string { return func(i int) string { return en.Lane(w[i]) } }
	}
	for {
		var wave []Effect
		if !fed && len(pending) < window && !br.isOpen() {
			page, err := feed(ctx)
			switch {
			case err != nil && errors.Is(err, ErrNotAnswering) && br.isOpen():
				// The feed's own requests (a stage planning the page)
				// found the provider not answering: it stops as for its
				// own (below), the rest of the feed unread.
			case err != nil:
				if stopsAll(err) || ctx.Err() != nil {
					return en.left(res, pending, noAnswer), err
				}
				errs = append(errs, err)
				fed = true
			case len(page) == 0:
				fed = true
			}
			var final []Effect
			for _, e := range page {
				if e.State.Final() {
					final = append(final, e)
				} else {
					wave = append(wave, e) // planned: sent; sent or unknown: asked first
				}
			}
			if en.Final != nil && len(final) > 0 {
				if err := ForEach(ctx, 8, final, func(e Effect) error { return en.Final(ctx, e) }); err != nil {
					if stopsAll(err) || ctx.Err() != nil {
						return en.left(res, pending, noAnswer), err
					}
					errs = append(errs, err)
				}
			}
		}
		if fed && sent.IsZero() {
			// The feed is done, its last page sent (a page that ends it
			// is empty): the wait begins, before the wave of questions
			// this turn may make. Begun after it, a wave of questions to
			// a provider that does not answer ran with no wait to stop
			// it, for as long as its questions took.
			sent = time.Now()
			if en.Wait > 0 {
				deadline = sent.Add(en.Wait)
			}
		}
		// The pending effects due within half a poll interval join the
		// wave, so that effects sent one after another are asked about
		// together; the others stay (filtered in place).
		due := time.Now().Add(poll / 2)
		kept, fresh := pending[:0], len(wave)
		for _, w := range pending {
			if w.eligible(deadline) && !w.dueBy(deadline).After(due) {
				wave = append(wave, w.e)
			} else {
				kept = append(kept, w)
			}
		}
		clear(pending[len(kept):])
		pending = kept
		if len(wave) > fresh {
			res.Waves++ // a wave of queries
		}
		if len(wave) > 0 {
			sendCtx := ctx
			if !deadline.IsZero() {
				sendCtx = withoutResend(ctx, deadline) // once the wait is over: ask, send nothing again
			}
			others := 0 // pending, not in the wave, still to be asked (send appends after them)
			for _, w := range pending {
				if !w.left {
					others++
				}
			}
			stopped, err := en.send(sendCtx, p, br, wave, laneOf(wave), first, poll, deadline, &mu, &res, &pending, failed, noAnswer)
			if stopped {
				// The provider did not answer after the wait, or stopped
				// answering: what is pending is asked no more, left for
				// the next run to ask.
				res.Unasked += others
				for i := range pending {
					pending[i].left = true
				}
			}
			if err != nil {
				if stopsAll(err) || ctx.Err() != nil {
					return en.left(res, pending, noAnswer), err
				}
				errs = append(errs, err)
			}
		}
		awaiting(len(pending))
		if br.isOpen() {
			// The provider is not answering: no page more, nothing more
			// sent or asked; what the engine holds is left as it is.
			res.NotAnswering, res.Unread = br.lastError(), !fed
			break
		}
		if !fed && len(pending) < window {
			continue // room for the next page
		}
		var next time.Time
		for _, w := range pending {
			if at := w.dueBy(deadline); w.eligible(deadline) && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		if next.IsZero() {
			if fed {
				break // nothing pending, or the wait is over
			}
			continue
		}
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return en.left(res, pending, noAnswer), errors.Join(append(errs, ctx.Err())...)
			case <-t.C:
			}
		}
	}
	res = en.left(res, pending, noAnswer)
	return res, errors.Join(errs...)
}

// maxSendBackoff bounds how long a request whose sends keep getting no
// answer waits before it is asked about (and sent) again.
const maxSendBackoff = 5 * time.Minute

// send makes a wave's requests, each as its turn comes under the pacer
// (ApplyEffect takes the tokens: a query answered "not found" and sent
// again costs two), and adds what is not final to pending, due first
// after it was sent, poll after it was asked. A request whose send got no
// answer (unknown) waits twice as long after each such send in a row
// (failed counts them), up to maxSendBackoff: one that keeps failing is
// not sent once a poll interval until the wait is over.
//
// A question that gets no answer (the provider could not be asked, and
// the stage's Error did not handle it: unansweredQuery) leaves, with a
// Wait, its effect pending as it was, counted in the progress as
// unanswered, and asked again twice as long after each such question in
// a row (noAnswer counts them) while the wait lasts. Once the wait is
// over (deadline), the first such question stops the rest of the wave
// (stopped): the effects not asked yet are left pending as they are
// (never sent again, never made final without an answer), for the next
// run to ask. Before, each of them was asked through its client's
// retries, a few at a time (the window sized by the latency seen while
// the provider answered), and a provider that accepts connections and
// never answers held the stage for as long as its questions took, each
// an error line of its own.
//
// Once the breaker br opens (NotAnsweringAfter requests in a row got no
// answer, questions or sends, before the wait or after it) the wave
// stops alike (stopped), its effects not sent yet left planned, those not
// asked yet pending as they are.
func (en *Engine) send(ctx context.Context, p *Pacer, br *breaker, wave []Effect, lane func(int) string, first, poll time.Duration, deadline time.Time,
	mu *sync.Mutex, res *EngineResult, pending *[]waiting, failed map[int64]int, noAnswer map[int64]noAnswer) (stopped bool, err error) {
	handled := make([]bool, len(wave)) // under mu: the calls that left their effect final, pending or to Error
	var kept []error                   // under mu: the errors of calls that ended once the breaker was open
	one := func(ctx context.Context, i int) error {
		e := wave[i]
		before := e.Sends
		next, err := ApplyEffect(ctx, en.Store, en.Sender(e), e)
		mu.Lock()
		res.Sent += next.Sends - before
		handled[i] = !errors.Is(err, errPaceStopped) // not asked, not sent: left as it is below
		mu.Unlock()
		if err == nil && next.Sends > before && next.State == EffectUnknown {
			ProgressFrom(ctx).Unanswered(next.LastError)
		}
		switch {
		case err != nil && (ctx.Err() != nil || errors.Is(err, errPaceStopped)):
			return err
		case err != nil && (errors.Is(err, ErrNotRecorded) || errors.Is(err, ErrLockLost) || errors.Is(err, ErrNotRead)):
			// The ledger's failure, whatever the send's error joined with
			// it says of its subject: not the stage's to handle.
			return fmt.Errorf("%s %s: %w", next.Kind, next.Key, err)
		case err != nil:
			herr := err
			if en.Error != nil {
				herr = en.Error(ctx, next, err)
			}
			if herr == nil || stopsAll(herr) || !unansweredQuery(err) || en.Wait <= 0 {
				return herr // no Wait: nothing would end the questions of a provider down
			}
			// The question got no answer: the effect is as it was,
			// pending, its outcome as unknown as before.
			ProgressFrom(ctx).Unanswered(err.Error())
			mu.Lock()
			defer mu.Unlock()
			q := noAnswer[next.ID]
			q.n, q.err = q.n+1, err.Error()
			noAnswer[next.ID] = q
			delay := min(poll<<min(q.n-1, 16), max(poll, maxSendBackoff))
			*pending = append(*pending, waiting{e: next, due: time.Now().Add(delay), asked: true})
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				stopped = true
				return errStopWave // the wait is over: ask no more of this wave
			}
			return nil
		case next.State.Final():
			mu.Lock()
			delete(failed, next.ID)
			delete(noAnswer, next.ID)
			mu.Unlock()
			if en.Final != nil {
				return en.Final(ctx, next)
			}
			return nil
		}
		delay, backoff := poll, false
		mu.Lock()
		defer mu.Unlock()
		delete(noAnswer, next.ID) // answered, or sent since
		if next.Sends > before {
			delay = first // just sent: the provider needs its time
			if next.State == EffectUnknown {
				failed[next.ID]++
				delay = min(first<<min(failed[next.ID]-1, 16), max(first, maxSendBackoff))
				backoff = delay > first
			} else {
				delete(failed, next.ID)
			}
		}
		*pending = append(*pending, waiting{e: next, due: time.Now().Add(delay), asked: next.Sends == before, backoff: backoff})
		return nil
	}
	err = p.EachAsNeeded(ctx, len(wave), lane, func(ctx context.Context, i int) error {
		err := one(ctx, i)
		if !br.isOpen() || errors.Is(err, errStopWave) || ctx.Err() != nil || (err != nil && stopsAll(err)) {
			return err
		}
		if err != nil && !errors.Is(err, errPaceStopped) && !errors.Is(err, ErrNotAnswering) {
			// (ErrNotAnswering: a Final or Error handler's request the
			// stage's breaker refused or cut, said by NotAnswering.)
			mu.Lock()
			kept = append(kept, err)
			mu.Unlock()
		}
		// The provider is not answering (NotAnsweringAfter): nothing
		// more of this wave starts, and the calls that wait for their
		// turn send nothing (Pace), also when this one was cut.
		return errStopWave
	})
	mu.Lock()
	defer mu.Unlock()
	if len(kept) > 0 {
		err = errors.Join(append([]error{err}, kept...)...)
	}
	stopped = stopped || br.isOpen()
	if stopped && ctx.Err() == nil {
		// Not asked after the wait, or not sent nor asked once the
		// provider stopped answering: left as they are, asked no more by
		// this run.
		for i, e := range wave {
			if !handled[i] {
				*pending = append(*pending, waiting{e: e, left: true})
				if e.State != EffectPlanned {
					res.Unasked++
				}
			}
		}
	}
	return stopped, err
}

// noAnswer is how many questions in a row about an effect got no answer,
// and the last one's error.
type noAnswer struct {
	n   int
	err string
}

// unansweredQuery reports whether err, ApplyEffect's, is its status
// query's that got no answer (the provider could not be asked), and not
// one that concerns its subject alone (a refusal to answer about it:
// SubjectOnly) or every request (KindUsage, the ledger's failures).
func unansweredQuery(err error) bool {
	var q queryError
	return errors.As(err, &q) && !SubjectOnly(err) && !stopsAll(err)
}

// waiting is a pending effect and when it is next asked about.
type waiting struct {
	e       Effect
	due     time.Time
	asked   bool // asked about since it was last sent
	backoff bool // due later than the first poll: its sends keep failing
	left    bool // not asked after the wait, its wave stopped (send): asked no more
}

// eligible reports whether w may still be asked about: before the
// deadline, or never asked since it was sent (every request sent gets
// at least one question, however long the sending took, unless the
// questions after the wait stopped for want of an answer).
func (w waiting) eligible(deadline time.Time) bool {
	return !w.left && (deadline.IsZero() || !w.asked || !w.due.After(deadline))
}

// dueBy is when w is next asked about: when it is due, but a request
// backing off, never asked about since it was last sent, is asked at the
// deadline at the latest (its backoff may reach minutes past it).
func (w waiting) dueBy(deadline time.Time) time.Time {
	if !deadline.IsZero() && !w.asked && w.backoff && w.due.After(deadline) {
		return deadline
	}
	return w.due
}

func (en *Engine) left(res EngineResult, pending []waiting, noAnswer map[int64]noAnswer) EngineResult {
	for _, w := range pending {
		res.Pending = append(res.Pending, w.e)
		if q, ok := noAnswer[w.e.ID]; ok {
			if res.NoAnswer == nil {
				res.NoAnswer = map[int64]string{}
			}
			res.NoAnswer[w.e.ID] = q.err
		}
	}
	return res
}

// StillProcessing is the error of the effects r left pending
// (StillProcessing), which also counts those whose last question got no
// answer, with the first one's error, and those not asked after the
// wait; nil when none is pending and the provider answered. When the
// provider stopped answering (r.NotAnswering), it says so first, naming
// provider, and counts the effects left planned (never sent) and the
// feed left unread: work left for the next run too (ErrStillProcessing,
// exit 1), also when none is pending.
func (r EngineResult) StillProcessing(what, provider string, wait time.Duration) error {
	if r.NotAnswering != "" {
		return notAnsweringError(what, provider, r)
	}
	return stillProcessingOf(what, provider, wait, r.Pending, r.NoAnswer, r.Unasked)
}

// LeftAtStop is what r, an engine stopped by an error that stops all
// (a provider refusing our credentials: exit 2), left sent and not final
// (sent, or unknown): a line for the stage's problems, naming what (the
// requests' kind, plural), their count, the first and that only a run of
// the date asks provider about them, with n, how many; "" and 0 when
// none. The request refused is not among them (it moved nothing, and the
// stop's line says it). They may have moved money, and nothing but a run
// of this date, with our credentials put right, asks about them: an
// operator told the refusal alone learnt nothing of them, where a run
// ending needing a person (exit 4) names the requests only a run of its
// date settles.
func (r EngineResult) LeftAtStop(what, provider string) (line string, n int) {
	var first Effect
	for _, e := range r.Pending {
		if e.State != EffectSent && e.State != EffectUnknown {
			continue
		}
		if n == 0 {
			first = e
		}
		n++
	}
	if n == 0 {
		return "", 0
	}
	return fmt.Sprintf("%d %s sent and not final when the stage stopped, left as they are (first: %s, %s): only a run of this date asks %s about them, each by its key, before anything is sent again",
		n, what, first.Key, first.State, provider), n
}

// notAnsweringError is the error of an engine stopped because its
// provider stopped answering (r.NotAnswering).
func notAnsweringError(what, provider string, r EngineResult) error {
	msg := notAnsweringLead(provider, r.NotAnswering)
	var planned, unknown, unanswered int
	var firstPlanned, firstUnknown, firstAsked Effect
	for _, e := range r.Pending {
		switch e.State {
		case EffectPlanned:
			if planned == 0 {
				firstPlanned = e
			}
			planned++
		case EffectUnknown:
			if unknown == 0 {
				firstUnknown = e
			}
			unknown++
		}
		if _, ok := r.NoAnswer[e.ID]; ok {
			if unanswered == 0 {
				firstAsked = e
			}
			unanswered++
		}
	}
	if n := len(r.Pending) - planned; n > 0 {
		first := r.Pending[0]
		if first.State == EffectPlanned {
			for _, e := range r.Pending {
				if e.State != EffectPlanned {
					first = e
					break
				}
			}
		}
		msg += fmt.Sprintf("; %d %s sent and not final are left as they are (first: %s, %s)", n, what, first.Key, first.State)
	}
	if unknown > 0 {
		msg += fmt.Sprintf("; %d of them got no answer to their send, their outcome unknown (first: %s after %d sends: %s): the next run asks %s about each before sending it again",
			unknown, firstUnknown.Key, firstUnknown.Sends, cmp.Or(OneLine(firstUnknown.LastError), "no answer"), provider)
	}
	if unanswered > 0 {
		msg += fmt.Sprintf("; the last question about %d of them got no answer (first: %s: %s)", unanswered, firstAsked.Key, OneLine(r.NoAnswer[firstAsked.ID]))
	}
	if r.Unasked > 0 {
		msg += fmt.Sprintf("; %d not asked again", r.Unasked)
	}
	if planned > 0 {
		msg += fmt.Sprintf("; %d %s planned and not sent (first: %s)", planned, what, firstPlanned.Key)
	}
	if r.Unread {
		msg += fmt.Sprintf("; any further %s in the ledger were not read", what)
	}
	return &stillProcessing{msg + "; re-run to resolve once " + provider + " answers"}
}

// StillProcessing is the error of effects left pending when the wait was
// over: what, how many, the first, and that a re-run resolves them. When
// some got no answer to their last request (unknown: a provider down, or
// refusing with "retry later"), it counts them and gives the first one's
// error, so that the log says why they are not final rather than only that
// they are not. It wraps ErrStillProcessing (exit 1: resumable).
func StillProcessing(what, provider string, wait time.Duration, pending []Effect) error {
	return stillProcessingOf(what, provider, wait, pending, nil, 0)
}

func stillProcessingOf(what, provider string, wait time.Duration, pending []Effect, noAnswer map[int64]string, unasked int) error {
	if len(pending) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d %s still processing at %s after %s (first: %s, %s)",
		len(pending), what, provider, wait, pending[0].Key, pending[0].State)
	var unknown, unanswered int
	var first, firstAsked Effect
	for _, e := range pending {
		if e.State == EffectUnknown {
			if unknown == 0 {
				first = e
			}
			unknown++
		}
		if _, ok := noAnswer[e.ID]; ok {
			if unanswered == 0 {
				firstAsked = e
			}
			unanswered++
		}
	}
	if unknown > 0 {
		why := first.LastError
		if why == "" {
			why = "no answer"
		}
		msg += fmt.Sprintf("; %d of them got no answer to their last request, their outcome unknown (first: %s after %d sends: %s): the next run asks %s about each before sending it again",
			unknown, first.Key, first.Sends, why, provider)
	}
	if unanswered > 0 {
		msg += fmt.Sprintf("; the last question about %d of them got no answer (first: %s: %s)", unanswered, firstAsked.Key, noAnswer[firstAsked.ID])
	}
	if unasked > 0 {
		msg += fmt.Sprintf("; %d not asked again once %s did not answer after the wait", unasked, provider)
	}
	return &stillProcessing{msg + "; re-run to resolve"}
}

type stillProcessing struct{ msg string }

func (e *stillProcessing) Error() string { return e.msg }
func (e *stillProcessing) Unwrap() error { return ErrStillProcessing }
