package wechatpay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// ErrNotReady is what API.Remaining wraps when a transaction cannot be
// distributed yet (WeChat Pay needs a few minutes after the payment).
var ErrNotReady = errors.New("not distributable yet")

// Txn is what one WeChat payment transaction's settlement moves:
// the commission to the platform's receiver (the rest unfrozen to the
// seller), or, with no commission, a plain unfreeze.
type Txn struct {
	SubMchID      string
	TransactionID string
	Currency      pipeline.Currency
	Commission    int64 // minor units; 0: unfreeze
}

// API is what the distribute stage needs of WeChat Pay Global's
// funds-distribution API (Adapter over a Client).
type API interface {
	// EnsureReceiver returns the state of the platform's receiver at the
	// sub-merchant, adding it first when it is missing.
	EnsureReceiver(ctx context.Context, subMchID string) (state string, err error)
	// Remaining returns what is still frozen for distribution in the
	// transaction, in the currency WeChat Pay holds it in; ErrNotReady
	// when it cannot be distributed yet.
	Remaining(ctx context.Context, subMchID, transactionID string) (pipeline.Money, error)
	// Send and Query perform and ask about one distribution or unfreeze,
	// keyed by e.Key (out_order_no), as EffectSender does, and return
	// WeChat Pay's order as the matcher reads it (zero when it answered
	// none).
	Send(ctx context.Context, e pipeline.Effect, o Txn) (pipeline.Outcome, OrderStatus, error)
	Query(ctx context.Context, e pipeline.Effect, o Txn) (pipeline.Outcome, OrderStatus, error)
}

// Store is what the distribute stage needs of the ledger.
type Store interface {
	pipeline.EffectStore
	LatestEffect(ctx context.Context, kind, subject string) (pipeline.Effect, bool, error)
	// AccountsAt returns, by seller id, the run's sellers' accounts at
	// provider (those with one).
	AccountsAt(ctx context.Context, runID int64, provider string) (map[string]string, error)
	// ItemsInStateAfter walks the next limit of a run's items of a
	// channel whose order number comes after `after`, by order number
	// (one page of a keyset pagination), and returns those in the state,
	// by order number; next is where the next page starts, "" when no
	// item follows the walk.
	ItemsInStateAfter(ctx context.Context, runID int64, ch pipeline.Channel, state, after string, limit int) (
		items []pipeline.Split, next string, err error)
	SetItemPaid(ctx context.Context, runID int64, orderNo, payoutKey, ref, reason string) error
	SetItemState(ctx context.Context, runID int64, orderNo, from, to, reason string) error
}

// StageConfig configures the distribute stage.
type StageConfig struct {
	Store       Store
	API         API
	MaxRatioBps int64 // the most a transaction may send out, in basis points of its amount (default 3000)
	// MaxFeeBps is the most WeChat Pay's acquiring fee may take of a
	// transaction, in basis points of its amount (0: none). WeChat Pay
	// publishes that what is left to distribute (unsplit_amount) is what
	// the order settled less its fee (查询订单剩余可退款金额, chapter4_1_12:
	// an order of 100 CNY at a fee of 1% leaves 99 to distribute). Before
	// a distribution, WeChat Pay must hold from base less MaxFeeBps of it
	// (rounded in the fee's favour) to base, base the order's amount less
	// its refunds; less (a refund the platform does not show, or a higher
	// fee), more, or another currency is held for a person.
	MaxFeeBps   int64
	MaxRequests int // distribution and unfreeze requests per transaction (default 50)
	// Currencies are those WeChat Pay distributes (default
	// DistributionCurrency alone, as published): an order in another is
	// held for a person before any request about it, its transaction to
	// be settled by hand at WeChat Pay (then settle resolve --order).
	Currencies []pipeline.Currency
	// Pacer keeps to WeChat Pay's limits: the service provider's bucket,
	// and one per sub-merchant (its lanes are sub-merchant ids). nil: no
	// limit but pipeline.DefaultMaxInFlight in flight.
	Pacer *pipeline.Pacer
	// Wait bounds the wait for final outcomes once the requests are
	// sent (default 10m), for all of them together; FirstPoll is how long after a send it is first asked about
	// (default Poll), Poll between later queries (default 1s).
	Wait, FirstPoll, Poll time.Duration
	// Final keeps, under the matcher's key (FinalAnswersName), the answers
	// the stage adopted that the matcher would keep: the run's
	// reconciliation does not ask them again. nil: none kept.
	Final pipeline.FinalAnswers
	// Now is the clock (default time.Now): a transaction paid
	// FreezeWindow or longer before it of which WeChat Pay holds less
	// than the order is held naming WeChat's release to the seller, and
	// one that waits within ReleaseWarning of that release names its day.
	Now func() time.Time
	// Memory is how long WeChat Pay's order query is taken to remember an
	// out_order_no (NewProvider: ProviderConfig.Memory, DefaultMemory when
	// 0; here 0 is no limit, no date held). A date that ended longer ago (by
	// Now) plans no new distribution or unfreeze, and sends none the
	// ledger holds never sent (pipeline.DatePastMemory): its out_order_no
	// is a function of the date, and a run the ledger does not hold may
	// have sent it. Its transactions are held for a person (exit 4).
	// SendPastMemory lifts it: a person checked the date in WeChat Pay's
	// records.
	Memory         time.Duration
	SendPastMemory bool
	// Batch is how many recorded items are read and planned at a time
	// (default DefaultBatch). The engine reads the next batch as soon as
	// fewer than its window of requests wait on WeChat Pay
	// (pipeline.Engine.RunFeed), so the stage holds a batch and a window,
	// however large the day, and a day of many batches waits on WeChat
	// Pay's processing about once, not once a batch.
	Batch int
}

// Name names WeChat Pay in mismatches, summaries and logs.
const Name = "wechatpay"

// Subject names the logical settlement of an order's transaction on date
// d: the subject of its distribution or unfreeze effects, whatever the
// attempt ("WX/<YYYYMMDD>/<order_no>"; the ledger's reconcile queries join
// effects to items by it).
func Subject(d pipeline.Date, orderNo string) string {
	return fmt.Sprintf("WX/%s/%s", d.Compact(), orderNo)
}

// OrderOfSubject is the order number of a Subject; ok is false for a
// subject of another provider.
func OrderOfSubject(subject string) (orderNo string, ok bool) {
	rest, ok := strings.CutPrefix(subject, "WX/")
	if !ok {
		return "", false
	}
	_, orderNo, ok = strings.Cut(rest, "/")
	return orderNo, ok
}

// OutOrderNo is the deterministic out_order_no of an attempt at an order's
// distribution or unfreeze: at most 64 characters of [0-9A-Za-z_-]. It is
// the same for the same date, order and attempt in every version (a re-run
// after an upgrade asks about what an earlier one sent).
func OutOrderNo(d pipeline.Date, orderNo string, attempt int) string {
	return fmt.Sprintf("WX%s%s-%d", d.Compact(), pipeline.ShortHash("WX", orderNo), attempt)
}

// OutOrderNoTaken is the out_order_no of an attempt whose OutOrderNo
// another transaction's request holds already: its hash is 48 bits of the
// order number, so two orders' can be the same (about one date in 500 at
// a million WeChat Pay orders a day). The ledger refuses the second
// (pipeline.ErrKeyTaken), which is then planned under this one - the same
// shape, its hash salted - before anything is sent, and keeps it. Before,
// it was held for a person to settle by hand at WeChat Pay.
func OutOrderNoTaken(d pipeline.Date, orderNo string, attempt int) string {
	return fmt.Sprintf("WX%s%s-%d", d.Compact(), pipeline.ShortHash("WX", orderNo, "taken"), attempt)
}

// driven is one transaction as the stage drives it.
type driven struct {
	it     pipeline.Split
	order  Txn
	before int // sends of its effect before this run
}

// DistributeStage settles each recorded wechatpay item - one payment
// transaction frozen at the seller's sub-merchant - by one funds
// distribution sending the commission to the platform's receiver and
// unfreezing the rest, or by a plain unfreeze when the commission is zero.
// It first makes sure the order is in a currency WeChat Pay distributes
// (c.Currencies, CNY alone by default; else it is held for a person
// before any request), the platform's receiver is EFFECTIVE for the
// sub-merchant (added when missing), that the transaction can be
// distributed and still holds the order's amount, and that the commission
// stays within WeChat's ratio cap; otherwise the item is held, with the
// reason, for a later re-run. Every request is intent first with a
// deterministic out_order_no; a CLOSED one is retried with a new key only
// while the transaction's request limit allows.
//
// A date that ended longer ago than WeChat Pay's order query remembers
// (c.Memory) plans no new request, and sends none the ledger holds never
// sent, unless c.SendPastMemory: its out_order_no may be one a run the
// ledger does not hold sent and WeChat Pay forgot
// (pipeline.DatePastMemory). Its transactions are held for a person (exit
// 4); what is in flight is still asked about.
//
// The checks and the requests go out as fast as WeChat Pay's limits allow
// (c.Pacer: per service provider and per sub-merchant), driven by the
// Engine: requests still PROCESSING are asked about in waves until final
// or until c.Wait after the sends is over, when they are left in the ledger to the next
// run (ErrStillProcessing, exit 1).
//
// The items are read from the ledger in batches of c.Batch by order
// number (keyset pagination), each planned and given to one Engine
// (RunFeed), which reads the next while earlier requests wait on WeChat
// Pay: the stage holds a batch and the engine's window, not the day.
// c.Wait bounds the wait of all the batches together: it begins when the
// last batch is sent.
//
// A distribution or unfreeze the stage adopts succeeded from an answer
// in which WeChat Pay's order agrees with the ledger in everything the
// matcher's first check compares (FINISHED, the line to the platform's
// receiver or the seller SUCCESS with the commission or the seller's
// share, and the time WeChat accepted it) is recorded in c.Final under
// the key the matcher would record (AgreedKey), once the ledger holds
// the effect's final state: the reconciliation of the run does not ask
// it again. Anything else is left to the matcher to ask.
//
// What concerns one transaction stays with it: a request WeChat Pay
// definitely refused, or an answer about it that cannot be read, holds that
// transaction with the answer as its reason ("needs a person", exit 4) and
// the others are settled. Refused credentials (pipeline.KindUsage) and a
// ledger that cannot be read where a transaction's request is looked up
// (pipeline.ErrNotRead) concern every transaction: the stage stops at the
// first, with that one error, and holds no transaction for it.
//
// A WeChat Pay that refuses our request signature (401 SIGN_ERROR: our
// merchant certificate changed at WeChat Pay under the run) stops the
// stage at the first refusal, a send's or a question's: nothing more is
// sent (those in flight end), and the stage ends with a configuration
// error (exit 2) in one line naming the flags to check. A distribution
// or unfreeze so refused moved nothing: it is left unknown, marked not
// taken, and the re-run asks about it by its out_order_no. What the stage
// had held for a person before the refusal, the transactions waiting on
// WeChat Pay and the requests the stop left sent and not final
// (EngineResult.LeftAtStop) - what only a run of this date settles - go
// with its error (pipeline.WithProblems), said by the runner with the
// stage's summary so far, not dropped. So do they with the stage's other
// configuration errors (exit 2), each in its own line: this machine's
// clock and WeChat Pay's apart, an answer the platform key we hold does
// not verify (WeChat Pay's certificate changed), answers not WeChat
// Pay's.
//
// A WeChat Pay that does not answer at all stops the stage: its requests
// share one breaker (pipeline.WithBreaker) - the checks and questions of
// its planning, the engine's sends and questions, the questions of what
// the engine finds final - and once pipeline.NotAnsweringAfter in a row
// got no answer nothing more is asked, planned or sent. Every transaction
// is left as the ledger holds it (none held, failed or made final for
// it, nothing sent again blindly), and the stage ends resumable (exit 1)
// naming WeChat Pay as not answering. Before, only the engine's requests
// were counted: the checks each took their client's retries, one
// transaction after another, and the stage ended with a line a
// transaction.
func DistributeStage(c StageConfig) pipeline.StageFunc {
	c.defaults()
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		// One breaker for the stage's requests to WeChat Pay: its checks
		// and questions while planning (the feed), its engine's, and those
		// of the engine's Final (c.API's go through pipeline.Ask).
		ctx = pipeline.WithBreaker(ctx)
		sellers, err := c.Store.AccountsAt(ctx, run.ID, SellerAccount)
		if err != nil {
			return "", err
		}
		st := &stageRun{c: &c, run: run, sellers: sellers, progress: pipeline.ProgressFrom(ctx),
			txns: map[string]*driven{}, finished: map[string]OrderStatus{}, past: c.pastMemory(run)}
		st.progress.Restart(0)
		res, err := st.engine().RunFeed(ctx, st.feed())
		keptErr := st.recordKept(ctx)
		if st.pastHeld > 0 {
			// One cause, said once and first, counted for each transaction.
			st.problems.Lead(fmt.Sprintf("%d WeChat transactions held: %v", st.pastHeld, st.past), st.pastHeld)
			st.problems.Explain(st.past) // said once, at the run's end
		}
		summary := fmt.Sprintf("WeChat: %d transactions settled (%d sent now), %d held", st.paid, st.sent, st.held)
		if st.released > 0 {
			summary += fmt.Sprintf(", %d released to the seller with the platform's line closed (the commission not collected)", st.released)
		}
		if pipeline.KindOf(err) == pipeline.KindUsage {
			if RefusedOurKey(err) {
				// What the stage held for a person before the refusal
				// (planning's holds, WeChat's answers about one
				// transaction), the transactions waiting on WeChat Pay,
				// and the requests the stop left sent and not final -
				// what only a run of this date settles, as an end
				// needing a person says it - go with it: said by the
				// runner in the stage's NEEDS A PERSON line, with the
				// stage's summary so far (empty, the line carried the
				// other channels' alone), not dropped.
				if line, n := res.LeftAtStop("WeChat distributions or unfreezes", "WeChat Pay"); n > 0 {
					st.problems.AddMany(line, n)
				}
				return summary + ", stopped: WeChat Pay refused our key", pipeline.WithProblems(credentialsRefused(err), st.attention())
			}
			// Any other configuration error (this machine's clock and
			// WeChat Pay's apart, an answer our platform key does not
			// verify, answers not WeChat Pay's): its own line, with the
			// same for a person. Before, it returned alone, and the
			// night's log said none of them.
			if line, n := res.LeftAtStop("WeChat distributions or unfreezes", "WeChat Pay"); n > 0 {
				st.problems.AddMany(line, n)
			}
			return summary + ", stopped: a configuration error", pipeline.WithProblems(err, st.attention())
		}
		if ctx.Err() != nil {
			return "", cmp.Or(err, ctx.Err()) // stopped: the ledger holds where; a re-run goes on
		}
		errs := errors.Join(append(st.errs, err, keptErr)...)
		if res.NotAnswering != "" {
			// WeChat Pay stopped answering (the engine stopped, the feed
			// with it): said once, with what else went wrong.
			errs = pipeline.OtherThanNoAnswer(errs)
		} else if errs != nil {
			return "", errs
		}
		attention := st.attention()
		if len(res.Pending) > 0 || res.NotAnswering != "" {
			// Resumable (exit 1) before what needs a person: the
			// transactions held for a person were dropped from the run's
			// word when others were still processing at the wait's end
			// (or WeChat Pay stopped answering: the engine stopped, and
			// what it did not plan, send or ask is as the ledger holds it).
			stuck := res.StillProcessing("WeChat transactions", "WeChat Pay", c.Wait)
			if attention != nil || errs != nil {
				return summary, pipeline.E(pipeline.KindFailed, "", errors.Join(stuck, errs, attention))
			}
			return summary, stuck
		}
		return summary, attention
	}
}

// attention is what the stage leaves for a person (KindNeedsPerson), nil
// when nothing: its problems, and the transactions waiting on WeChat Pay
// (held for it to be ready: a receiver under review, say), counted with
// them and the first named. They pass once WeChat Pay is ready, but
// nothing settles them then except a run of this date: the run must not
// end as if all were done, nor stop (exit 2) without a word of them.
func (st *stageRun) attention() error {
	if st.waiting == 0 {
		return st.problems.NeedsPerson()
	}
	problems := append([]string{fmt.Sprintf("order %s: %s", st.firstWait.order, st.firstWait.reason)}, st.problems.List...)
	what := fmt.Sprintf("%d WeChat transactions wait on WeChat Pay: only a run of this date settles them (run it again once WeChat Pay is ready)", st.waiting)
	if n := st.problems.Count(); n > 0 {
		what += fmt.Sprintf(", and %d other problem(s)", n)
	}
	return pipeline.E(pipeline.KindNeedsPerson, "", &pipeline.Problems{Summary: what, List: problems, Total: st.problems.Count() + st.waiting, Notes: st.problems.Notes})
}

// pastMemory is pipeline.DatePastMemory's word on new requests of run's
// date, nil when they may be sent (SendPastMemory, or the date within
// WeChat Pay's memory).
func (c *StageConfig) pastMemory(run *pipeline.Run) error {
	if c.SendPastMemory {
		return nil
	}
	return pipeline.DatePastMemory(run.Key.Date, run.TimeZone, c.Now(), c.Memory, "WeChat Pay", "distributions or unfreezes")
}

// pastHold is the reason of a transaction held as its date is past WeChat
// Pay's memory (stageRun.past, which the stage says once in full).
const pastHold = "nothing sent: the date is past WeChat Pay's memory (--wechat-query-memory), its out_order_no perhaps sent before and forgotten; " +
	"a person checks the date in WeChat Pay's records, then runs it with --send-past-memory or settles it by hand"

// defaults fills what c leaves zero.
func (c *StageConfig) defaults() {
	if c.MaxRatioBps <= 0 {
		c.MaxRatioBps = 3000
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = 50
	}
	if len(c.Currencies) == 0 {
		c.Currencies = []pipeline.Currency{DistributionCurrency}
	}
	if c.Wait <= 0 {
		c.Wait = 10 * time.Minute
	}
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
}

// recordedBatches calls fn with the run's recorded wechatpay items, c.Batch
// at a time by order number (keyset pagination), each batch counted into
// progress's total, until there are no more or fn returns an error, which
// it returns.
func recordedBatches(ctx context.Context, c *StageConfig, runID int64, progress *pipeline.Progress, fn func([]pipeline.Split) error) error {
	var (
		after string // the last order number walked: the next batch starts after it
		seen  int64
	)
	for {
		items, next, err := c.Store.ItemsInStateAfter(ctx, runID, Channel, pipeline.ItemRecorded, after, c.Batch)
		if err != nil {
			return err
		}
		after = next
		seen += int64(len(items))
		progress.SetTotal(seen)
		if len(items) > 0 {
			err = fn(items)
		}
		if err != nil || after == "" {
			return err
		}
	}
}

// DefaultBatch is how many recorded items the distribute stage reads and
// plans at a time when StageConfig.Batch is 0.
const DefaultBatch = 10000

// stageRun is one run of the distribute stage: what it has done so far
// over its batches.
type stageRun struct {
	c        *StageConfig
	run      *pipeline.Run
	sellers  map[string]string // seller id -> sub_mchid
	progress *pipeline.Progress

	mu               sync.Mutex
	paid, sent, held int
	released         int               // closed distributions released whole to the seller
	problems         pipeline.Problems // held for a person: all counted, the first few named
	waiting          int               // held for WeChat Pay to be ready (a receiver under review, say)
	firstWait        struct{ order, reason string }
	errs             []error // a batch's planning errors: the other batches go on
	// past, when not nil, says why no new request of the run's date is
	// planned or sent (StageConfig.Memory); pastHeld counts the
	// transactions it held.
	past     error
	pastHeld int

	// The transactions planned and not final yet (by effect subject),
	// WeChat's last answer for each key when it was FINISHED, and the
	// final keys of the answers adopted in agreement, to record.
	tmu      sync.Mutex
	txns     map[string]*driven
	finished map[string]OrderStatus
	kept     []string
}

// hold keeps a transaction recorded with the reason it is held.
func (st *stageRun) hold(ctx context.Context, it pipeline.Split, h *pipeline.Hold) error {
	st.mu.Lock()
	st.held++
	if h.NeedsPerson {
		st.problems.Add(fmt.Sprintf("order %s: %s", it.OrderNo, h.Reason))
	} else {
		if st.waiting == 0 || it.OrderNo < st.firstWait.order {
			st.firstWait.order, st.firstWait.reason = it.OrderNo, h.Reason
		}
		st.waiting++
	}
	st.mu.Unlock()
	return st.c.Store.SetItemState(ctx, st.run.ID, it.OrderNo, pipeline.ItemRecorded, pipeline.ItemRecorded, pipeline.HeldPrefix+h.Reason)
}

// order is what the item's transaction moves.
func (st *stageRun) order(it pipeline.Split) Txn {
	return Txn{SubMchID: st.sellers[it.SellerID], TransactionID: it.ProviderTxnID, Currency: it.Currency, Commission: it.Commission}
}

// feed reads the recorded items c.Batch at a time by order number
// (keyset pagination), plans each batch (planBatch) and gives the engine
// its effects; a batch with nothing to send is passed over.
func (st *stageRun) feed() pipeline.Feed {
	var (
		after string // the last order number walked: the next batch starts after it
		seen  int64
		done  bool
	)
	return func(ctx context.Context) ([]pipeline.Effect, error) {
		for !done {
			items, next, err := st.c.Store.ItemsInStateAfter(ctx, st.run.ID, Channel, pipeline.ItemRecorded, after, st.c.Batch)
			if err != nil {
				return nil, err
			}
			after, done = next, next == ""
			if len(items) == 0 {
				continue
			}
			seen += int64(len(items))
			st.progress.SetTotal(seen)
			todo, err := st.planBatch(ctx, items)
			if pipeline.KindOf(err) == pipeline.KindUsage || errors.Is(err, pipeline.ErrNotRead) || ctx.Err() != nil {
				// Refused credentials, or a ledger that cannot be read,
				// concern every batch: the engine stops at it, told once.
				return nil, cmp.Or(err, ctx.Err())
			}
			if err != nil {
				st.mu.Lock()
				st.errs = append(st.errs, err)
				st.mu.Unlock()
			}
			if err := st.recordKept(ctx); err != nil {
				return nil, err
			}
			if errors.Is(err, pipeline.ErrNotAnswering) {
				// WeChat Pay is not answering: no batch more is planned;
				// the engine holds what this one planned as it is, and
				// stops.
				return todo, err
			}
			if len(todo) > 0 {
				return todo, nil
			}
		}
		return nil, nil
	}
}

// planBatch checks each transaction of a batch and records its request
// (intent first), paced under WeChat Pay's limits: a check takes a token,
// a transaction whose request is planned already (by the upload stage's
// PrepareStage, or an earlier run) none. It returns the effects to drive.
func (st *stageRun) planBatch(ctx context.Context, items []pipeline.Split) ([]pipeline.Effect, error) {
	c, run, progress := st.c, st.run, st.progress
	var (
		mu   sync.Mutex
		todo []pipeline.Effect
	)
	err := c.Pacer.EachAsNeeded(ctx, len(items), func(i int) string { return st.order(items[i]).SubMchID }, func(ctx context.Context, i int) error {
		it := items[i]
		o := st.order(it)
		e, outcome, answer, err := plan(ctx, c, run, it, o, st.past)
		if outcome != nil && outcome.Reason == pastHold {
			st.mu.Lock()
			st.pastHeld++
			st.mu.Unlock()
		}
		if err != nil && subjectError(err) {
			// WeChat Pay refused this transaction, or answered about it
			// what cannot be read: it is held with the answer; the
			// others go on.
			outcome, err = pipeline.NeedsAPerson(refusal+err.Error()), nil
		}
		if err != nil && pipeline.KindOf(err) == pipeline.KindUsage {
			return err // the others would be refused alike: one line, exit 2
		}
		if err != nil {
			progress.Add(1)
			return fmt.Errorf("order %s: %w", it.OrderNo, err)
		}
		if outcome != nil {
			progress.Add(1)
			return st.hold(ctx, it, outcome)
		}
		if e.State == pipeline.EffectFailed {
			progress.Add(1)
			return st.closed(ctx, it, o, e, answer)
		}
		if e.State == pipeline.EffectSucceeded {
			// Succeeded on an earlier run, its item not paid (held for
			// the seller's share, or the run stopped before): settled
			// from WeChat Pay's order, asked again by plan.
			progress.Add(1)
			return st.succeeded(ctx, it, o, e, answer, false)
		}
		if it.Held {
			// Held by an earlier run, its request goes out (or is asked
			// about) now: the hold no longer says why it is not paid. Left,
			// orders.csv and summary.csv showed it held, and the matcher a
			// refusal, while the request was in flight (found by a review).
			if err := c.Store.SetItemState(ctx, run.ID, it.OrderNo, pipeline.ItemRecorded, pipeline.ItemRecorded, ""); err != nil {
				return fmt.Errorf("order %s: %w", it.OrderNo, err)
			}
		}
		mu.Lock()
		todo = append(todo, e)
		mu.Unlock()
		st.tmu.Lock()
		st.txns[e.Subject] = &driven{it: it, order: o, before: e.Sends}
		st.tmu.Unlock()
		return nil
	})
	return todo, err
}

// txn returns the transaction of e's subject.
func (st *stageRun) txn(e pipeline.Effect) *driven {
	st.tmu.Lock()
	defer st.tmu.Unlock()
	return st.txns[e.Subject]
}

// done forgets e's transaction: it is final, or held.
func (st *stageRun) done(e pipeline.Effect) {
	st.tmu.Lock()
	defer st.tmu.Unlock()
	delete(st.txns, e.Subject)
	delete(st.finished, e.Key)
}

// recordKept records the final keys of the answers adopted in agreement
// so far (c.Final), once the ledger holds their effects succeeded.
func (st *stageRun) recordKept(ctx context.Context) error {
	st.tmu.Lock()
	kept := st.kept
	st.kept = nil
	st.tmu.Unlock()
	if st.c.Final == nil || len(kept) == 0 {
		return nil
	}
	slices.Sort(kept)
	return st.c.Final.RecordFinal(ctx, FinalAnswersName, kept)
}

// engine is the Engine that sends and resolves the planned requests.
func (st *stageRun) engine() *pipeline.Engine {
	c, progress := st.c, st.progress
	return &pipeline.Engine{Store: c.Store, Pacer: c.Pacer, FirstPoll: c.FirstPoll, Poll: c.Poll, Wait: c.Wait,
		// A request the ledger holds never sent is not sent when its
		// date is past WeChat Pay's memory (st.past).
		Sender: func(e pipeline.Effect) pipeline.EffectSender {
			return pipeline.HoldFirstSends(effectSender{api: c.API, order: st.txn(e).order, answered: func(o OrderStatus) {
				st.tmu.Lock()
				defer st.tmu.Unlock()
				if o.State == StateFinished {
					st.finished[e.Key] = o // the last answer: the one a final outcome is adopted from
				} else {
					delete(st.finished, e.Key)
				}
			}}, st.past)
		},
		Lane: func(e pipeline.Effect) string { return st.txn(e).order.SubMchID },
		Final: func(ctx context.Context, e pipeline.Effect) error {
			defer progress.Add(1)
			t := st.txn(e)
			defer st.done(e)
			switch e.State {
			case pipeline.EffectSucceeded:
				st.tmu.Lock()
				answer := st.finished[e.Key]
				st.tmu.Unlock()
				return st.succeeded(ctx, t.it, t.order, e, answer, e.Sends > t.before)
			default:
				st.tmu.Lock()
				answer := st.finished[e.Key]
				st.tmu.Unlock()
				return st.closed(ctx, t.it, t.order, e, answer)
			}
		},
		Error: func(ctx context.Context, e pipeline.Effect, err error) error {
			t := st.txn(e)
			if st.past != nil && e.Sends == 0 && errors.Is(err, pipeline.ErrPastMemory) {
				// Never sent, and its date past WeChat Pay's memory
				// (pipeline.HoldFirstSends): left planned, for a person.
				progress.Add(1)
				defer st.done(e)
				st.mu.Lock()
				st.pastHeld++
				st.mu.Unlock()
				return st.hold(ctx, t.it, pipeline.NeedsAPerson(pastHold))
			}
			if subjectError(err) {
				progress.Add(1)
				defer st.done(e)
				return st.hold(ctx, t.it, pipeline.NeedsAPerson(refusal+err.Error()))
			}
			if pipeline.KindOf(err) == pipeline.KindUsage {
				return err
			}
			return fmt.Errorf("order %s: %w", t.it.OrderNo, err)
		},
	}
}

// succeeded settles the item of a request that succeeded. A distribution
// collects the commission and, sent with unfreeze_unsplit, releases the
// rest to the seller on a line of its own, which outcome does not judge:
// WeChat Pay's order (answer, the last FINISHED one) must show it released
// (restOf) before the item is paid. A release WeChat Pay CLOSED leaves the
// seller's share frozen at WeChat Pay: held for a person, who releases it
// there (then settle resolve --order); one still PENDING waits for a
// re-run. The item was paid from the platform's line alone, with exit 0
// (found by a review). An unfreeze is judged the same way: its line
// releasing the share to the seller, or WeChat Pay holding nothing of the
// transaction any more (it was paid on the order's FINISHED state alone,
// lines or none: found by a review). sentNow says the request was sent
// by this run.
func (st *stageRun) succeeded(ctx context.Context, it pipeline.Split, o Txn, e pipeline.Effect, answer OrderStatus, sentNow bool) error {
	c, run := st.c, st.run
	note := "" // the item's reason once paid: "" when paid the usual way
	if (e.Kind == KindDistribution || e.Kind == KindUnfreeze) && it.SellerShare > 0 {
		if answer.State != StateFinished {
			// Decided on an earlier run, or from an answer not kept.
			a, err := askOrder(ctx, c, e, o)
			if subjectError(err) {
				return st.hold(ctx, it, pipeline.NeedsAPerson(refusal+err.Error()))
			}
			if err != nil {
				return fmt.Errorf("order %s: %w", it.OrderNo, err)
			}
			answer = a
		}
		what := fmt.Sprintf("%s%s %s collected the commission %s, but the release of the seller's share %s", refusal, e.Kind, e.Key,
			pipeline.Money{Minor: o.Commission, Currency: o.Currency}, pipeline.Money{Minor: it.SellerShare, Currency: o.Currency})
		if e.Kind == KindUnfreeze {
			what = fmt.Sprintf("%s%s %s is FINISHED, but the release of the seller's share %s", refusal, e.Kind, e.Key,
				pipeline.Money{Minor: it.SellerShare, Currency: o.Currency})
		}
		// WeChat Pay releases the seller's share less its fee (what it
		// holds is the order's amount less the fee, all of which is the
		// seller's once the commission is out): at least the share less
		// the most the fee may be on the order.
		least, err := c.shareLessFee(it)
		if err != nil {
			return fmt.Errorf("order %s: %w", it.OrderNo, err)
		}
		rest, released, why := restOf(answer, least)
		if len(answer.Lines) == 0 {
			// No line says the release (an order forgotten past WeChat
			// Pay's memory, askOrder): what WeChat Pay holds decides, also
			// when the least released is 0 (WeChat Pay's fee at least the
			// share).
			rest = restMissing
		}
		if rest == restReleased && released < it.SellerShare {
			// Said on the item: the seller got the share less WeChat
			// Pay's fee, not the share the ledger computed.
			note = fmt.Sprintf("WeChat Pay released %s to the seller: the share %s less its fee %s",
				pipeline.Money{Minor: released, Currency: o.Currency}, pipeline.Money{Minor: it.SellerShare, Currency: o.Currency},
				pipeline.Money{Minor: it.SellerShare - released, Currency: o.Currency})
		}
		switch rest {
		case restClosed:
			return st.hold(ctx, it, pipeline.NeedsAPerson(what+" is CLOSED ("+why+"): it is still frozen at WeChat Pay; release it there, then settle resolve --order"))
		case restPending:
			return st.hold(ctx, it, pipeline.Waits(what+" is still PENDING at WeChat Pay: a re-run asks again"))
		case restMissing:
			// No line of the order says it: released when WeChat Pay
			// holds nothing of the transaction any more.
			if err := pipeline.Pace(ctx); err != nil {
				return err
			}
			left, err := c.API.Remaining(ctx, o.SubMchID, o.TransactionID)
			if subjectError(err) || pipeline.IsNotFound(err) || errors.Is(err, ErrNotReady) {
				return st.hold(ctx, it, pipeline.NeedsAPerson(fmt.Sprintf("%s is not in WeChat Pay's order, nor what it holds of transaction %s: %v", what, o.TransactionID, err)))
			}
			if err != nil {
				return fmt.Errorf("order %s: remaining amount of %s: %w", it.OrderNo, o.TransactionID, err)
			}
			if left.Minor != 0 {
				return st.hold(ctx, it, pipeline.NeedsAPerson(fmt.Sprintf("%s is not in WeChat Pay's order (%s released on its lines), and WeChat Pay still holds %s of transaction %s",
					what, pipeline.Money{Minor: released, Currency: o.Currency}, left, o.TransactionID)))
			}
		}
	}
	st.mu.Lock()
	st.paid++
	if sentNow {
		st.sent++
	}
	st.mu.Unlock()
	if err := c.Store.SetItemPaid(ctx, run.ID, it.OrderNo, e.Key, e.ProviderRef, note); err != nil {
		return err
	}
	st.tmu.Lock()
	defer st.tmu.Unlock()
	if k, ok := AgreedKey(e, o, it.SellerShare, answer, c.MaxFeeBps); ok {
		st.kept = append(st.kept, k) // the ledger holds e succeeded: recorded with the next batch
	}
	return nil
}

// What WeChat Pay's order of a FINISHED distribution says of the release
// of the rest to the seller (restOf).
const (
	restReleased = iota // SUCCESS, at least the seller's share
	restPending         // still PENDING
	restClosed          // CLOSED
	restMissing         // no line releases it, or less than the share
)

// restOf reads the release of the rest to the seller in WeChat Pay's
// order of a distribution: how far it is, what its SUCCESS lines
// released, and WeChat Pay's reasons for closing it.
func restOf(o OrderStatus, share int64) (state int, released int64, why string) {
	var closed []string
	pending := false
	for _, l := range o.Lines {
		switch {
		case !l.Rest:
		case l.Result == ResultSuccess:
			released += l.Amount
		case l.Result == ResultClosed:
			closed = append(closed, cmp.Or(l.FailReason, "no reason given"))
		default:
			pending = true
		}
	}
	switch {
	case released >= share:
		return restReleased, released, ""
	case len(closed) > 0:
		return restClosed, released, strings.Join(closed, ", ")
	case pending:
		return restPending, released, ""
	}
	return restMissing, released, ""
}

// closed settles the item of a request that failed: WeChat Pay closed it
// (FINISHED with its receiver's line CLOSED) or refused it. A distribution
// is sent with unfreeze_unsplit: when WeChat Pay's order (answer, the last
// FINISHED one; zero when there was none) shows the platform's line CLOSED
// and the rest released to the seller (its line SUCCESS, at least the
// seller's share less the most WeChat Pay's fee may be: shareLessFee), the
// seller has its share: the item is paid, released to
// the seller, and the commission not collected needs a person (WeChat Pay
// returns a closed line's amount to the seller; it is recovered outside
// WeChat Pay; the closed distribution is also a failed payout of the date,
// exit 4 on every re-run, and stays in payouts.csv). Anything else is held
// for a person with the request's answer: a re-run asks again what is left
// to distribute, and sends the distribution again under a new key while
// WeChat Pay still holds the order's amount.
func (st *stageRun) closed(ctx context.Context, it pipeline.Split, o Txn, e pipeline.Effect, answer OrderStatus) error {
	what := fmt.Sprintf("%s %s failed: %s", e.Kind, e.Key, e.LastError)
	if e.Kind == KindDistribution {
		// What WeChat Pay releases is what it holds, the order's amount
		// less its fee: at least the share less the most the fee may be
		// on the order, as for a distribution that succeeded.
		least, err := st.c.shareLessFee(it)
		if err != nil {
			return fmt.Errorf("order %s: %w", it.OrderNo, err)
		}
		switch platform, rel := releaseOf(answer, least); rel {
		case released:
			return st.release(ctx, it, o, e, platform)
		case releasing:
			return st.hold(ctx, it, pipeline.Waits(what+"; WeChat Pay is still releasing the rest to the seller: a re-run asks again"))
		}
	}
	return st.hold(ctx, it, pipeline.NeedsAPerson(what+" (a re-run asks WeChat Pay what is left to distribute, and distributes it again while it holds the order's amount)"))
}

// release is what WeChat Pay's order says of a failed distribution's rest.
type release int

const (
	notReleased release = iota
	releasing           // the platform's line CLOSED, the rest to the seller still PENDING
	released            // the platform's line CLOSED, at least the seller's share released to it
)

// releaseOf reads WeChat Pay's order of a failed distribution: whether it
// closed the platform's line (returned) and released at least share to
// the seller, or is still releasing the rest.
func releaseOf(o OrderStatus, share int64) (platform OrderLine, rel release) {
	var rest int64
	closed, pending := false, false
	for _, l := range o.Lines {
		switch {
		case l.Platform && l.Result == ResultClosed:
			platform, closed = l, true
		case l.Rest && l.Result == ResultSuccess:
			rest += l.Amount
		case l.Rest && l.Result == ResultPending:
			pending = true
		}
	}
	switch {
	case o.State != StateFinished || !closed:
		return platform, notReleased
	case rest >= share:
		return platform, released
	case pending:
		return platform, releasing
	}
	return platform, notReleased
}

// release records the item of a distribution WeChat Pay closed and whose
// rest it released to the seller (closed): paid, its commission a problem
// for a person.
func (st *stageRun) release(ctx context.Context, it pipeline.Split, o Txn, e pipeline.Effect, platform OrderLine) error {
	reason := fmt.Sprintf("%s by WeChat Pay: the platform's line of %s %s CLOSED (%s), the rest unfrozen to the seller: commission %s not collected, to be recovered outside WeChat Pay (settle resolve)",
		pipeline.ReleasedToSeller, e.Kind, e.Key, cmp.Or(platform.FailReason, "no reason given"), pipeline.Money{Minor: o.Commission, Currency: o.Currency})
	st.mu.Lock()
	st.released++
	st.problems.Add(fmt.Sprintf("order %s: %s", it.OrderNo, reason))
	st.mu.Unlock()
	return st.c.Store.SetItemPaid(ctx, st.run.ID, it.OrderNo, e.Key, e.ProviderRef, reason)
}

// refusal starts the reason of a transaction held for WeChat Pay's
// answer about it (and the reconcile stage's row about it).
const refusal = "WeChat Pay: "

// subjectError reports whether err concerns only the transaction it
// came from: WeChat Pay definitely refused a request about it (Refused),
// or answered about it something that cannot be read (Unreadable), or its
// keys are ones WeChat Pay cannot take (ErrBadKeys: a transaction id of
// other characters, say). A configuration error (refused credentials),
// the ledger, the network or a WeChat Pay that does not answer concern
// every transaction.
func subjectError(err error) bool {
	if pipeline.KindOf(err) == pipeline.KindUsage || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// pipeline.ErrRefused: the engine's word about one request (one
	// WeChat Pay answered before, with its order id, that its query no
	// longer knows).
	if errors.Is(err, ErrBadKeys) || errors.Is(err, pipeline.ErrPastMemory) || errors.Is(err, pipeline.ErrRefused) {
		return true
	}
	var refused interface{ Refused() bool }
	if errors.As(err, &refused) && refused.Refused() {
		return true
	}
	var unreadable interface{ Unreadable() bool }
	return errors.As(err, &unreadable) && unreadable.Unreadable()
}

// plan returns the transaction's effect to drive - the one in
// flight, or a new attempt planned (intent recorded) once the checks pass
// - or why it is held; or a distribution WeChat Pay closed and released,
// or is releasing, to the seller (failed, with WeChat Pay's order saying
// so), which the caller settles as such (stageRun.closed). A first
// request the checks would hold for a person is planned all the same
// when WeChat Pay knows its out_order_no already (sentBefore: a ledger
// restored from a backup; sentBeforeTaken where the ledger holds that
// out_order_no for another transaction).
func plan(ctx context.Context, c *StageConfig, run *pipeline.Run, it pipeline.Split, o Txn, past error) (pipeline.Effect, *pipeline.Hold, OrderStatus, error) {
	next := firstAttempt(run, it, o)
	keyFor := func(attempt int) string { return OutOrderNo(run.Key.Date, it.OrderNo, attempt) }
	e, ok, err := c.Store.LatestEffect(ctx, next.Kind, next.Subject)
	switch {
	case err != nil:
		return pipeline.Effect{}, nil, OrderStatus{}, pipeline.NotRead(err) // the run's failure: told once
	case ok && e.Kind == KindDistribution && (e.State == pipeline.EffectSucceeded || e.State == pipeline.EffectFailed):
		// WeChat Pay's order says the rest: succeeded, whether the
		// seller's share was released (stageRun.succeeded); failed,
		// whether it was closed and released, or is releasing
		// (stageRun.closed), else it is sent again below.
		answer, err := askOrder(ctx, c, e, o)
		if err != nil {
			return pipeline.Effect{}, nil, OrderStatus{}, err
		}
		least, err := c.shareLessFee(it) // released less WeChat Pay's fee, as stageRun.closed reads it
		if err != nil {
			return pipeline.Effect{}, nil, OrderStatus{}, err
		}
		if _, rel := releaseOf(answer, least); e.State == pipeline.EffectSucceeded || rel != notReleased {
			return e, nil, answer, nil
		}
	case ok && e.State != pipeline.EffectFailed:
		return e, nil, OrderStatus{}, nil
	}
	if past != nil {
		// A new out_order_no of a date past WeChat Pay's memory: not
		// planned, for a person (StageConfig.Memory).
		return pipeline.Effect{}, pipeline.NeedsAPerson(pastHold), OrderStatus{}, nil
	}
	if h, err := check(ctx, c, it, o); err != nil || h != nil {
		if err == nil && !ok && h.NeedsPerson && c.currencyHold(o) == nil {
			if known, err := sentBefore(ctx, c, next, o); err != nil || known {
				if err == nil {
					e, err = c.Store.PlanEffect(ctx, next)
				}
				if errors.Is(err, pipeline.ErrKeyTaken) {
					return sentBeforeTaken(ctx, c, run, it, o, next, err)
				}
				return e, nil, OrderStatus{}, err
			}
		}
		return pipeline.Effect{}, h, OrderStatus{}, err
	}
	if ok {
		if next, err = pipeline.NextAttempt(e, c.MaxRequests, keyFor); err != nil {
			return e, pipeline.NeedsAPerson(err.Error()), OrderStatus{}, nil
		}
		next.RunID = run.ID
	}
	e, err = c.Store.PlanEffect(ctx, next)
	if errors.Is(err, pipeline.ErrKeyTaken) && next.Key == keyFor(next.Attempt) {
		next.Key = OutOrderNoTaken(run.Key.Date, it.OrderNo, next.Attempt)
		e, err = c.Store.PlanEffect(ctx, next)
	}
	if errors.Is(err, pipeline.ErrKeyTaken) {
		// Its out_order_no is another transaction's, and so is its
		// out_order_no taken: sent, it would be answered as that one's.
		// This transaction alone is held, for a person; the others go on.
		return pipeline.Effect{}, pipeline.NeedsAPerson(fmt.Sprintf("nothing sent: %v; settle it by hand at WeChat Pay, then settle resolve --order", err)), OrderStatus{}, nil
	}
	return e, nil, OrderStatus{}, err
}

// sentBefore reports whether WeChat Pay knows the first request of a
// transaction the ledger holds no request of: in a ledger that holds
// every request it sent, it never does. A ledger restored from a backup
// taken before the request was sent finds the transaction settled since
// (WeChat Pay holding less than the order's amount), and held it for a
// person while WeChat Pay had settled it under the out_order_no the ledger
// plans again. Planned again instead, it is sent again under that
// out_order_no, which is the same request to WeChat Pay: it answers the
// order it holds, which the stage judges as any other answer. It is asked
// only of a transaction held for a person.
func sentBefore(ctx context.Context, c *StageConfig, first pipeline.Effect, o Txn) (bool, error) {
	if err := pipeline.Pace(ctx); err != nil {
		return false, err
	}
	out, _, err := c.API.Query(ctx, first, o)
	if subjectError(err) || pipeline.IsNotFound(err) {
		return false, nil // the hold stands, with its own reason
	}
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", first.Kind, first.Key, err)
	}
	return out.Status != pipeline.OutcomeNotFound, nil
}

// sentBeforeTaken plans the first request of a transaction WeChat Pay
// knows (sentBefore) whose out_order_no the ledger refused as another
// transaction's (taken, pipeline.ErrKeyTaken): under its out_order_no
// taken, where WeChat Pay knows that one too (the first run planned it
// there, the other transaction's first), the same request again. Else it
// is held for a person, the others going on; the error stopped the stage
// for every transaction of the date. Unlike a transaction nothing was sent
// for (plan), it is not planned under its out_order_no taken unasked:
// WeChat Pay holds its request under the first, and another out_order_no
// would be a second request for a transaction it settled.
func sentBeforeTaken(ctx context.Context, c *StageConfig, run *pipeline.Run, it pipeline.Split, o Txn, first pipeline.Effect, taken error) (pipeline.Effect, *pipeline.Hold, OrderStatus, error) {
	again := first
	again.Key = OutOrderNoTaken(run.Key.Date, it.OrderNo, first.Attempt)
	known, err := sentBefore(ctx, c, again, o)
	if err != nil {
		return pipeline.Effect{}, nil, OrderStatus{}, err
	}
	if known {
		e, err := c.Store.PlanEffect(ctx, again)
		if !errors.Is(err, pipeline.ErrKeyTaken) {
			return e, nil, OrderStatus{}, err
		}
		taken = err
	}
	return pipeline.Effect{}, pipeline.NeedsAPerson(fmt.Sprintf("nothing sent: WeChat Pay knows %s %s of transaction %s, which the ledger does not hold (restored from a backup?): %v; "+
		"settle it by hand at WeChat Pay, then settle resolve --order", first.Kind, first.Key, o.TransactionID, taken)), OrderStatus{}, nil
}

// askOrder asks WeChat Pay for its order of request e of transaction o,
// taking one token of c.Pacer (pipeline.Pace). e is final in the ledger
// (succeeded or failed: its outcome is not asked, only its order's
// lines): an out_order_no WeChat Pay's query no longer knows, planned
// longer ago than it remembers (pipeline.ErrPastMemory), answers the zero
// order, with no lines, as one within its memory that it does not know.
// The callers read no lines as nothing known of the release, and what
// WeChat Pay still holds of the transaction decides: a succeeded request
// settles its item only once WeChat Pay holds nothing of it
// (stageRun.succeeded), a failed one goes again under a new out_order_no
// only while WeChat Pay holds the order's amount (check). Such an effect
// is one a person resolved from WeChat Pay's records (settle resolve
// --paid or --not-paid), or one whose item was held past the memory; it
// was held for a person on every run, no way out (found by a review).
func askOrder(ctx context.Context, c *StageConfig, e pipeline.Effect, o Txn) (OrderStatus, error) {
	if err := pipeline.Pace(ctx); err != nil {
		return OrderStatus{}, err
	}
	_, answer, err := c.API.Query(ctx, e, o)
	if errors.Is(err, pipeline.ErrPastMemory) && (e.State == pipeline.EffectSucceeded || e.State == pipeline.EffectFailed) {
		return OrderStatus{}, nil
	}
	if err != nil {
		return OrderStatus{}, fmt.Errorf("%s %s: %w", e.Kind, e.Key, err)
	}
	return answer, nil
}

// firstAttempt is the first request of the item's transaction in run: a
// distribution of its commission, or an unfreeze when it has none.
func firstAttempt(run *pipeline.Run, it pipeline.Split, o Txn) pipeline.Effect {
	kind := KindDistribution
	if o.Commission == 0 {
		kind = KindUnfreeze
	}
	return pipeline.Effect{RunID: run.ID, Kind: kind, Subject: Subject(run.Key.Date, it.OrderNo), Attempt: 1,
		Key: OutOrderNo(run.Key.Date, it.OrderNo, 1), Currency: o.Currency, Amount: o.Commission}
}

// check returns why a transaction cannot be settled now, or nil. It
// takes one token of c.Pacer (pipeline.Pace) for its questions; an order
// in a currency WeChat Pay does not distribute is held before any.
func check(ctx context.Context, c *StageConfig, it pipeline.Split, o Txn) (*pipeline.Hold, error) {
	if h := c.currencyHold(o); h != nil {
		return h, nil
	}
	if err := pipeline.Pace(ctx); err != nil {
		return nil, err
	}
	if o.Commission > 0 {
		state, err := c.API.EnsureReceiver(ctx, o.SubMchID)
		var we *Error
		if errors.As(err, &we) && we.Refused() {
			// A sub_mchid that is none of the service provider's
			// sub-merchants, most likely: said as a transaction refused
			// at it is (notItsSubMerchant).
			return nil, fmt.Errorf("platform receiver at sub-merchant %s%s: %w%s", o.SubMchID, whoseSubMerchant(it), err, notItsSubMerchant(it))
		}
		if err != nil {
			return nil, fmt.Errorf("platform receiver at %s: %w", o.SubMchID, err)
		}
		switch {
		case ReviewFailed(state):
			// Not under review: it never becomes EFFECTIVE by itself
			// (it waited, "run it again once WeChat Pay is ready").
			return pipeline.NeedsAPerson(fmt.Sprintf("the platform's receiver at sub-merchant %s is %q, neither under review (INIT) nor EFFECTIVE: "+
				"WeChat Pay's review did not approve it; see settle receivers status %s, upload new materials, then settle receivers add %s adds it again",
				o.SubMchID, state, o.SubMchID, o.SubMchID)), nil
		case state != ReceiverEffective:
			return c.nearRelease(it, pipeline.Waits("the platform's receiver at sub-merchant "+o.SubMchID+" is "+state)), nil
		}
	}
	left, err := c.API.Remaining(ctx, o.SubMchID, o.TransactionID)
	if errors.Is(err, ErrNotReady) {
		return c.nearRelease(it, pipeline.Waits("transaction "+o.TransactionID+" is not distributable yet")), nil
	}
	if pipeline.IsNotFound(err) {
		return pipeline.NeedsAPerson("WeChat Pay does not know transaction " + o.TransactionID + " at sub-merchant " + o.SubMchID + whoseSubMerchant(it) + notItsSubMerchant(it)), nil
	}
	var we *Error
	if errors.As(err, &we) && we.Refused() {
		// Refused outright: a transaction paid under another sub-merchant
		// than the one the run's sellers give its seller, most likely
		// (WeChat Pay refuses every request naming a transaction under
		// another: see wechatpaytest's otherSubMerchant), or one not
		// marked for distribution. WeChat Pay's message need not say
		// which, nor name anything: the reason does (it said neither the
		// sub-merchant asked nor the seller, and a person could not tell
		// which account to look at). Held for a person by the caller
		// (subjectError), the others going on.
		return nil, fmt.Errorf("transaction %s at sub-merchant %s%s: %w%s", o.TransactionID, o.SubMchID, whoseSubMerchant(it), err, notItsSubMerchant(it))
	}
	if err != nil {
		return nil, fmt.Errorf("remaining amount of %s: %w", o.TransactionID, err)
	}
	// The currency too: WeChat Pay's answer names it, and an order whose
	// currency WeChat contradicts is bad data, whatever the minor units
	// (1000 JPY is not 10.00 CNY; an unfreeze sends no currency, so
	// nothing else would catch it: found by a review).
	base := it.Amount - it.Refunded
	lo, err := c.netOf(base)
	if err != nil {
		return nil, err
	}
	if left.Minor < lo || left.Minor > base || left.Currency != o.Currency {
		if h := c.releasedHold(it, o, left); h != nil {
			return h, nil
		}
		why := ""
		if left.Currency == o.Currency && left.Minor < lo {
			// WeChat Pay publishes that it holds the order's amount less
			// its fee: a fee above MaxFeeBps reads as this too.
			why = fmt.Sprintf(" (WeChat Pay holds the order's amount less its fee, taken here as at most %d bps of it: --wechat-max-fee-bps, your contract's rate)", c.MaxFeeBps)
		}
		if left.Currency != o.Currency {
			// Not a refund: the minor units of two currencies do not
			// compare (a marketplace that listed its currency in
			// --wechat-currencies while WeChat Pay holds the
			// transaction in CNY, say).
			return pipeline.NeedsAPerson(fmt.Sprintf("WeChat holds %s for transaction %s, the order says %s: nothing sent; WeChat Pay holds it in %s, not in the order's %s: "+
				"find out why at WeChat Pay (sub-merchant %s: the platform's currency for the order is wrong, or WeChat Pay does not settle it in %s, --wechat-currencies), "+
				"then fix the platform's data or settle it by hand at WeChat Pay and settle resolve --order",
				left, o.TransactionID, pipeline.Money{Minor: base, Currency: o.Currency}, left.Currency, o.Currency, o.SubMchID, o.Currency)), nil
		}
		return pipeline.NeedsAPerson(fmt.Sprintf("WeChat holds %s for transaction %s, the order says %s%s: nothing sent; find out why at WeChat Pay (sub-merchant %s: a refund the platform does not show?), "+
			"then fix the platform's data or settle it by hand at WeChat Pay and settle resolve --order", left, o.TransactionID, pipeline.Money{Minor: base, Currency: o.Currency}, why, o.SubMchID)), nil
	}
	capMinor, err := pipeline.MulDivFloor(it.Amount, c.MaxRatioBps, 10000)
	if err != nil {
		return nil, err
	}
	if o.Commission > capMinor {
		return pipeline.NeedsAPerson(fmt.Sprintf("commission %s is above WeChat's cap of %d bps of the order (%s)", pipeline.Money{Minor: o.Commission, Currency: o.Currency}, c.MaxRatioBps, pipeline.Money{Minor: capMinor, Currency: o.Currency})), nil
	}
	return nil, nil
}

// notItsSubMerchant ends the reason of a transaction WeChat Pay does not
// know, or refuses, at the sub-merchant the run's sellers give its seller:
// whose sub_mchid it is, and the way out when the transaction was paid
// under another (the seller re-onboarded since, or the platform's sellers
// wrong). The run read its sellers once (a run of the date keeps them,
// and --reextract is refused once anything of it was sent): settling it
// by hand there and recording it with the transaction's own sub-merchant
// (settle resolve --order --wechat-sub-mchid, which asks WeChat Pay there
// that it holds nothing of it) is the way, whatever the platform's
// sellers say now.
func notItsSubMerchant(it pipeline.Split) string {
	return fmt.Sprintf("; nothing sent; if the transaction was paid under another sub-merchant "+
		"(the seller's changed since, or the platform's sellers give a wrong one), settle it by hand at WeChat Pay there, then "+
		"settle resolve --order %s --wechat-sub-mchid THAT_SUB_MCHID", it.OrderNo)
}

// whoseSubMerchant says whose sub-merchant a transaction was asked about
// at (notItsSubMerchant).
func whoseSubMerchant(it pipeline.Split) string {
	return fmt.Sprintf(", seller %s's sub_mchid as this run read the platform's sellers", it.SellerID)
}

// releasedHold holds, for a person, a transaction of which WeChat Pay
// holds less than the order (left) and that was paid FreezeWindow (180
// days) or longer ago: WeChat Pay publishes that it then releases the
// funds to the seller by itself, so the commission cannot be collected
// through it any more. nil for a transaction paid since, or of which
// WeChat Pay holds as much as the order or more, or holds it in another
// currency: the caller's hold says what WeChat Pay holds. WeChat Pay's
// answer decides, not our clock alone: a transaction it still holds
// whole is distributed.
func (c *StageConfig) releasedHold(it pipeline.Split, o Txn, left pipeline.Money) *pipeline.Hold {
	if it.PaidAt.IsZero() || c.Now().Sub(it.PaidAt) < FreezeWindow || left.Currency != o.Currency || left.Minor >= it.Amount-it.Refunded {
		// Not less than the order, in its currency: whatever WeChat
		// released, it still holds this much (another currency is bad
		// data, said by the caller's hold).
		return nil
	}
	days := int(FreezeWindow / (24 * time.Hour))
	return pipeline.NeedsAPerson(fmt.Sprintf("WeChat holds %s for transaction %s, the order says %s; it was paid on %s: WeChat Pay releases a transaction's frozen funds "+
		"to the seller %d days after payment (published), and the commission %s cannot be collected through it any more: "+
		"collect it by hand (sub-merchant %s), then settle resolve --order", left, o.TransactionID, pipeline.Money{Minor: it.Amount - it.Refunded, Currency: o.Currency},
		beijingDay(it.PaidAt), days, pipeline.Money{Minor: o.Commission, Currency: o.Currency}, o.SubMchID))
}

// netOf returns the least WeChat Pay may hold of a transaction of which
// the order shows base (its amount less refunds) before any distribution:
// base less its acquiring fee at MaxFeeBps, rounded up (WeChat Pay
// publishes that it holds the order's amount less its fee; a refund takes
// its share of the fee back with it).
func (c *StageConfig) netOf(base int64) (int64, error) {
	if base <= 0 || c.MaxFeeBps <= 0 {
		return base, nil
	}
	// base - ceil(base*fee) = floor(base*(1-fee)), without overflow.
	return pipeline.MulDivFloor(base, 10000-min(c.MaxFeeBps, 10000), 10000)
}

// shareLessFee returns the least WeChat Pay may release to the seller of
// item it: its share less the most WeChat Pay's fee may be on the order
// (netOf), never below 0.
func (c *StageConfig) shareLessFee(it pipeline.Split) (int64, error) {
	base := it.Amount - it.Refunded
	net, err := c.netOf(base)
	if err != nil {
		return 0, err
	}
	return max(0, it.SellerShare-(base-net)), nil
}

// ReleaseWarning is how long before WeChat Pay releases a transaction's
// funds to the seller (FreezeWindow after payment) a transaction that
// waits says on which day it does.
const ReleaseWarning = 30 * 24 * time.Hour

// nearRelease adds to the reason of a transaction that waits (h) the day
// WeChat Pay releases its funds to the seller, the commission with them,
// once that day is ReleaseWarning or less away: a wait is otherwise the
// same on its first day and on its last.
func (c *StageConfig) nearRelease(it pipeline.Split, h *pipeline.Hold) *pipeline.Hold {
	if it.PaidAt.IsZero() {
		return h
	}
	at := it.PaidAt.Add(FreezeWindow)
	if at.Sub(c.Now()) > ReleaseWarning {
		return h
	}
	h.Reason += fmt.Sprintf("; WeChat Pay releases its funds to the seller, the commission with them, on %s (%d days after payment)",
		beijingDay(at), int(FreezeWindow/(24*time.Hour)))
	return h
}

// beijingDay names the day of t as WeChat Pay dates it, Beijing's: the
// UTC date said a payment made before 08:00 in Beijing, and its release,
// a day early.
func beijingDay(t time.Time) string {
	return t.In(Beijing).Format(time.DateOnly) + " (Beijing time)"
}

// currencyHold holds, for a person, a transaction whose order is in a
// currency WeChat Pay does not distribute (c.Currencies): a distribution
// of it would be refused (its receiver line names the order's currency),
// and what WeChat Pay holds of it is in CNY, not the order's amount. No
// request is sent; a person settles it at WeChat Pay by hand, then says so
// with settle resolve --order (which asks WeChat Pay that it holds nothing
// of it any more). Without the check, a seeded HKD order was distributed
// in HKD by the fake, and would have been refused by WeChat Pay on every
// run.
func (c *StageConfig) currencyHold(o Txn) *pipeline.Hold {
	if slices.Contains(c.Currencies, o.Currency) {
		return nil
	}
	names := make([]string, len(c.Currencies))
	for i, cur := range c.Currencies {
		names[i] = string(cur)
	}
	return pipeline.NeedsAPerson(fmt.Sprintf("WeChat Pay distributes in %s only (--wechat-currencies), not %s: nothing is sent for transaction %s; "+
		"settle it by hand at WeChat Pay (sub-merchant %s), then settle resolve --order", strings.Join(names, ", "), o.Currency, o.TransactionID, o.SubMchID))
}

// effectSender binds an order to the WeChat API as an EffectSender, and
// passes each order WeChat Pay answered to answered.
type effectSender struct {
	api      API
	order    Txn
	answered func(OrderStatus)
}

func (s effectSender) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	out, st, err := s.api.Send(ctx, e, s.order)
	s.answered(st)
	return out, err
}

func (s effectSender) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	out, st, err := s.api.Query(ctx, e, s.order)
	s.answered(st)
	return out, err
}

// credentialsRefused is the stage's error once WeChat Pay refused our
// request signature (err, the engine's or the planning's, which stopped
// at it). Nothing more was sent: every request would be refused alike. A
// configuration error (exit 2) in one line, saying what to check (err
// names the flags) and that the re-run is safe: a request so refused was
// not executed, and each one sent is asked about by its out_order_no
// before it is sent again.
func credentialsRefused(err error) error {
	return pipeline.Errorf(pipeline.KindUsage, "WeChat Pay", "refused our credentials during the distributions, and nothing more was sent; "+
		"run again once it takes our key: a distribution or unfreeze refused so moved nothing, and each one sent is asked about by its "+
		"out_order_no before it is sent again: %w", err)
}
