package infiniapay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/settlekit/settle/pipeline"
)

// DistributeStage pays sellers by Infinia revenue sharing: one
// request per seller, currency and run date, with a deterministic
// requestNo, intent first, polled to a final state. A revenue share pays
// the net of the run's accepted items of the seller (uploaded in trade
// files) and the seller's carried balance: amounts held by earlier runs
// (positive) and clawbacks of late refunds (negative).
//
// A net that is negative, zero or below the currency's minimum payout is
// not sent: the run's items are carried (an entry of the balance) to the
// seller's next revenue share, whichever run makes it; so is everything of
// a seller whose binding is not ACTIVE (refreshed from Infinia), of a
// currency whose platform balance does not cover every new payout in it
// (none of them is sent), or of a seller whose available revenue share at
// Infinia is below the net - except what Infinia already holds under the
// requestNo it would be sent with (a ledger restored from a backup: see
// atInfinia), paid or paying, or failed while it paid or is paying a
// later requestNo of the share, which is sent again under it, moving
// nothing. A
// revenue share that fails opens the balance it netted again and carries
// its items: nothing is lost, and the next run pays it. A payout already
// planned is always resolved first, never re-checked or re-planned.
//
// A date that ended longer ago than Infinia's status query remembers
// (StageConfig.Memory) plans no new revenue share, and sends none the
// ledger holds never sent, unless StageConfig.SendPastMemory: its
// requestNo may be one a run the ledger does not hold sent and Infinia
// forgot (pipeline.DatePastMemory). A seller with items of the date is
// held for a person (exit 4), its items neither paid nor carried (held
// so in the reports, pastHold, their state left as it is), and so are
// its items uploaded after a share of the date not paid yet, and those of
// a share of the date that failed (PayoutFailedHeld, not carried). Such a
// seller's open carried balance up to the date (clawbacks of late refunds
// among it) is held with the date too, for the date's own share
// (carriedPast); a seller's carried balance alone, with no order of the
// date held, stays open for a later date's revenue share. What is in
// flight is still asked about.
//
// An Infinia that does not answer at all stops the stage: its requests
// share one breaker (pipeline.WithBreaker) - planning's questions (a
// seller's binding, the platform balance, a seller's available share,
// whether Infinia holds a share already) and the engine's sends and
// questions - and once pipeline.NotAnsweringAfter in a row got no answer
// nothing more is asked, planned or sent. No seller is carried for it,
// nothing is made final without an answer, and the stage ends resumable
// (exit 1) naming Infinia as not answering; what was planned waits in the
// ledger for the next run. Before, only the engine's requests were
// counted: planning asked each seller through its client's retries, one
// after another, and a short balance whose shares got no answer carried
// every seller for a person.
//
// An Infinia that refuses our credentials (our key pair changed at
// Infinia under the run) stops the stage at the first refusal, a send's
// or a question's: nothing more is sent, and the stage ends with a
// configuration error (exit 2) telling to check our key. The share
// refused moved nothing: it is left unknown, marked not taken, neither
// failed nor carried, and the re-run asks about it by its requestNo.
// Before, the engine took the refused send for an unknown outcome and
// sent every share left, each refused alike. What the stage had found
// for a person before the refusal, and the shares the stop left sent and
// not final (only a run of this date asks about them), go with its error
// (stopped, pipeline.WithProblems), said by the runner with the stage's
// summary so far, not dropped.
func DistributeStage(c StageConfig) pipeline.StageFunc {
	c.defaults()
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		ctx = pipeline.WithBreaker(ctx) // planning's questions and the engine's requests to Infinia
		d := &distribution{c: &c, run: run, past: c.pastMemory(run, "revenue shares")}
		if err := d.undoFailed(ctx); err != nil {
			return "", err
		}
		if err := c.releasePast(ctx, run, pipeline.ItemUploaded, d.past); err != nil {
			return "", err
		}
		if err := d.carriedPast(ctx); err != nil {
			return "", err
		}
		// The sellers held past Infinia's memory, by planning and by the
		// engine (a share the ledger holds planned and never sent): one
		// cause, said once and first, counted for each seller.
		leadPast := func() {
			if n := len(d.pastHeld); n > 0 {
				d.problems.Lead(fmt.Sprintf("%d sellers' revenue shares held, nothing carried: %v", n, d.past), n)
				d.problems.Explain(d.past) // said once, at the run's end
			}
		}
		err := d.plan(ctx)
		if refusedOurKey(err) {
			// A binding, balance or available-share question (or one
			// about an earlier share) refused for who we are: the same
			// one line as a refusal while sending, not the client's
			// generic text (found by a review).
			return d.summary(), d.stopped(ctx, leadPast, ourKeyRefused(err, "while the revenue shares were planned, and nothing was sent", "planning asks again from the start"))
		}
		if err != nil {
			if oerr := d.holdCarriedPast(ctx); oerr != nil {
				return "", errors.Join(err, oerr)
			}
			leadPast()
			stopped := pipeline.StoppedNotAnswering(ctx, "Infinia", err, d.problems.NeedsPerson())
			if stopped == nil {
				return "", err
			}
			// Infinia stopped answering while planning: what it did not
			// plan waits for the next run, and so does what it planned.
			return fmt.Sprintf("%d revenue shares paid (%d sent now), %d carried forward", d.paid, d.sent, d.carried), stopped
		}
		// The carried balances of the sellers planning held, held with
		// the date before anything is sent: open until the stage's end,
		// a share of another date planned meanwhile could net them.
		if err := d.holdCarriedPast(ctx); err != nil {
			return "", err
		}
		err = d.pay(ctx)
		if refusedOurKey(err) {
			return d.summary(), d.stopped(ctx, leadPast, err)
		}
		if err != nil && !errors.Is(err, pipeline.ErrStillProcessing) {
			return "", err
		}
		// The carried balances of the sellers whose orders the engine
		// held since (late orders of a share in flight, a share that
		// failed), held with the date.
		if err := d.holdCarriedPast(ctx); err != nil {
			return "", err
		}
		leadPast()
		summary := fmt.Sprintf("%d revenue shares paid (%d sent now), %d carried forward", d.paid, d.sent, d.carried)
		if err != nil {
			// Resumable (exit 1) before what needs a person, as the
			// upload stage says it: the problems planning found (a
			// platform balance short, a binding rejected) were dropped
			// when revenue shares were still processing at the wait's
			// end, and the run said only "re-run" (found by an
			// operator's trial).
			if np := d.problems.NeedsPerson(); np != nil {
				return summary, pipeline.E(pipeline.KindFailed, "", errors.Join(err, np))
			}
			return summary, err
		}
		return summary, d.problems.NeedsPerson()
	}
}

type distribution struct {
	c   *StageConfig
	run *pipeline.Run
	// todo are the payouts to drive (planned, in flight or final), by id
	// with their sends when found: the engine reads them from the ledger a
	// page at a time, so a day of 100,000 sellers holds 16 bytes a payout.
	todo []todoPayout

	mu                  sync.Mutex
	paid, sent, carried int
	problems            pipeline.Problems         // for a person: all counted, the first few named
	bindings            map[string]*sellerBinding // Infinia seller id -> its binding, asked once a run
	// past, when not nil, says why no new revenue share of the run's date
	// is planned or sent (StageConfig.Memory, pipeline.DatePastMemory);
	// pastHeld holds the sellers and currencies it held (heldPast), each
	// once however many ways it was.
	past     error
	pastHeld map[string]bool
	// heldFor says, by seller, why the run holds its orders of the
	// channels for its account (pipeline.SellerHoldPrefix), or why a
	// person rejected them while they were (pipeline.RejectedSellerHold):
	// read once by plan, before the candidates.
	heldFor map[string]string
}

// sellerBinding is one seller's binding as planning found it.
type sellerBinding struct {
	once   sync.Once
	status string
	err    error
}

// binding returns the seller's binding, refreshed from Infinia once in the
// run's planning and recorded in the ledger: Infinia binds a seller, not
// a currency, so the seller's currencies share the one query (they are
// checked in the same page). Only the candidate that makes the query takes
// a token (Pace); the others of the seller wait for its answer.
func (d *distribution) binding(ctx context.Context, p pipeline.PayoutCandidate) (string, error) {
	d.mu.Lock()
	if d.bindings == nil {
		d.bindings = map[string]*sellerBinding{}
	}
	b, ok := d.bindings[p.Account]
	if !ok {
		b = &sellerBinding{}
		d.bindings[p.Account] = b
	}
	d.mu.Unlock()
	b.once.Do(func() {
		if b.err = pipeline.Pace(ctx); b.err != nil { // the one request of planning: its token
			return
		}
		b.status, b.err = d.c.API.BindingStatus(ctx, pipeline.QueryRequestNo("ABQ"), p.Account)
		if b.err == nil {
			b.err = d.c.Store.SetBinding(ctx, pipeline.Binding{SellerID: p.SellerID, ProviderSellerID: p.Account, Status: b.status, Source: "query"})
		}
	})
	return b.status, b.err
}

func (d *distribution) problem(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.problems.Add(fmt.Sprintf(format, args...))
}

// held counts a seller's revenue share held (carried to a later one)
// with h; a hold that needs a person is one of the run's problems (exit
// 4), named by the seller and currency.
func (d *distribution) held(seller string, cur pipeline.Currency, h *pipeline.Hold) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.carried++
	if h.NeedsPerson {
		d.problems.Add(fmt.Sprintf("seller %s %s: %s", seller, cur, h.Reason))
	}
}

// hold carries the run's uploaded items of the candidate (if any) into
// the seller's balance with h's reason, and counts it (held).
func (d *distribution) hold(ctx context.Context, p pipeline.PayoutCandidate, h *pipeline.Hold) error {
	d.held(p.SellerID, p.Currency, h)
	return d.carry(ctx, p, h.Reason)
}

// carry carries the run's uploaded items of the candidate (if any) into
// the seller's balance with the reason.
func (d *distribution) carry(ctx context.Context, p pipeline.PayoutCandidate, reason string) error {
	subject := RevenueShareSubject(d.run.Key.Date, p.SellerID, p.Currency)
	_, _, err := d.c.Store.CarryItems(ctx, d.run, p.SellerID, p.Currency, d.c.Channels, subject, reason)
	return err
}

// undoFailed applies again what a failed revenue share's failure must do
// (PayoutFailed: re-open what it netted, carry its items) for every
// revenue share of the run whose latest attempt failed: the process may
// have died between recording the failure and applying it. It is
// idempotent.
func (d *distribution) undoFailed(ctx context.Context) error {
	failed, err := d.c.Store.LatestFailed(ctx, d.run.ID, KindRevenueShare)
	if err != nil {
		return err
	}
	for _, e := range failed {
		if err := d.failed(ctx, e, "revenue share "+e.Key+" failed: "+e.LastError); err != nil {
			return err
		}
	}
	return nil
}

// failed applies revenue share e's failure (reason, why): the balance it
// netted open again and its items carried (PayoutFailed); on a date past
// Infinia's memory (d.past) its items are held with the date instead
// (PayoutFailedHeld, pastHold), carried by nothing. Its next attempt, a
// new requestNo of the date, a run the ledger lost may have sent, and
// Infinia forgot: carried, a later date's share, inside Infinia's memory
// and so sent, paid them again (found by a review).
func (d *distribution) failed(ctx context.Context, e pipeline.Effect, reason string) error {
	seller := subjectSeller(e.Subject)
	if d.past != nil {
		return d.c.Store.PayoutFailedHeld(ctx, d.run, seller, e.Currency, d.c.Channels, e, pastHold)
	}
	return d.c.Store.PayoutFailed(ctx, d.run, seller, e.Currency, d.c.Channels, e, reason)
}

// summary is the stage's summary of a stop for our refused credentials:
// what it did before it, said in the stage's NEEDS A PERSON line (empty,
// the line carried the other parts' summaries alone, as if theirs were
// the stage's).
func (d *distribution) summary() string {
	return fmt.Sprintf("%d revenue shares paid (%d sent now), %d carried forward, stopped: Infinia refused our key", d.paid, d.sent, d.carried)
}

// stopped is the stage's error once Infinia refused our credentials
// (err, ourKeyRefused), with the problems the stage had found for a
// person before (pipeline.WithProblems: said by the runner, not dropped),
// lead first, among them the shares the stop left sent and not final
// (pay: pipeline.EngineResult.LeftAtStop), and the carried balances of the sellers held past
// Infinia's memory held with the date (holdCarriedPast).
func (d *distribution) stopped(ctx context.Context, lead func(), err error) error {
	if cerr := d.holdCarriedPast(ctx); cerr != nil {
		return errors.Join(err, cerr)
	}
	lead()
	return pipeline.WithProblems(err, d.problems.NeedsPerson())
}

// carriedPast, when the guard holds the run's date (d.past), holds with
// the date the open carried balance, up to the date, of the sellers whose
// orders of the date it holds (pastHold; HoldCarriedWithDate): a run the
// ledger does not hold may have netted it into the date's revenue share
// under a requestNo Infinia forgot. Left open, a later date's share
// netted it again: its clawbacks (the guarded run records again those
// that run recorded and netted) were taken back from the seller twice,
// and its positive entries paid twice, which Infinia's available share
// of the seller does not refuse when clawbacks netted with them leave
// room (found by a review, reproduced with a restored ledger: a seller
// owed 414.00 was paid 342.00, and the date, once sent, was refused as
// another amount than Infinia paid under its requestNo; holding its
// clawbacks alone, the seller was paid 450.00). Held, the date's own share nets it
// once the guard no longer holds the date, and no other does: a run the
// guard does not hold releases it (ReleaseCarriedWithDate) before it
// plans. Their sellers are held already (their orders), and counted so;
// a seller with no order of the date held, its balance carried alone,
// is not held (see DistributeStage).
//
// It runs at the stage's start (releasing, or holding what earlier
// attempts held); holdCarriedPast holds again as planning and the engine
// hold more. What is held with the date of a seller the date no longer
// has an order of (a re-extract dropped them) stays held too: a run of
// the date the ledger lost read the date as it was then, with that
// seller's orders, and may have netted its balance into a share Infinia
// paid; released, a later date's share paid it again (found by a review:
// ReleaseCarriedGoneFromDate released it at the next guarded run). A run
// the guard does not hold (a person checked Infinia's statement:
// --send-past-memory) releases it; until then each such seller is
// named for a person, among those held past Infinia's memory (the run
// needs a person: held silently, nothing said it was there).
func (d *distribution) carriedPast(ctx context.Context) error {
	if d.past == nil {
		_, err := d.c.Store.ReleaseCarriedWithDate(ctx, d.run)
		return err
	}
	gone, err := d.c.Store.CarriedHeldGoneFromDate(ctx, d.run, d.c.Channels)
	if err != nil {
		return err
	}
	for _, sc := range gone {
		d.heldPast(sc.SellerID, sc.Currency, fmt.Sprintf("its carried balance is held with %s, past Infinia's memory, and %s has no Infinia order of the seller any more (read again): a run of %s the ledger lost may have paid it in a revenue share Infinia no longer remembers; once Infinia's statement shows it was not, settle run --date %s --send-past-memory releases it for the seller's next revenue share",
			d.run.Key.Date, d.run.Key.Date, d.run.Key.Date, d.run.Key.Date))
	}
	return d.holdCarriedPast(ctx)
}

// holdCarriedPast holds with the date the carried balances of the sellers
// whose orders the guard holds now (carriedPast), nothing when it does not
// hold the date: the stage's start released them, and nothing since can
// have held more.
func (d *distribution) holdCarriedPast(ctx context.Context) error {
	if d.past == nil {
		return nil
	}
	_, err := d.c.Store.HoldCarriedWithDate(ctx, d.run, d.c.Channels, pastHold)
	return err
}

// heldPast counts seller's revenue share in cur among those held past
// Infinia's memory (d.past), once however many ways it is held (a share
// in flight whose late orders were held, and which then failed in the
// same run, was counted twice in the stage's line: found by a review),
// and names why for a person when why is not "".
func (d *distribution) heldPast(seller string, cur pipeline.Currency, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pastHeld == nil {
		d.pastHeld = map[string]bool{}
	}
	d.pastHeld[seller+" "+string(cur)] = true
	if why != "" {
		d.problems.Add(fmt.Sprintf("seller %s %s: %s", seller, cur, why))
	}
}

// holdPast holds p's items of the run uploaded and covered by no share
// with the date (pastHold: not carried, and so paid by no later date's
// share), counting p among the sellers held past Infinia's memory
// (heldPast, why).
func (d *distribution) holdPast(ctx context.Context, p pipeline.PayoutCandidate, why string) error {
	d.heldPast(p.SellerID, p.Currency, why)
	_, err := d.c.Store.HoldWaiting(ctx, d.run.ID, p.SellerID, p.Currency, d.c.Channels, pipeline.ItemUploaded, pastHold)
	return err
}

// planPage is how many candidates planning checks at a time (a seller's
// currencies are never split between two pages), and how many payouts of
// a currency it reads back at a time to plan them.
const planPage = 1000

// plan decides, for every candidate (the run's uploaded items and the
// open carried balances of its shard's sellers, by seller and currency),
// whether it is resolved (a payout is already planned), carried, or to be
// planned, and then plans those by currency (planCurrency); it fills
// d.todo. The candidates stream from the ledger and are checked a page at
// a time; those that pass wait in the ledger (payout_candidates) for their
// currency's balance check. Planning holds a page, whatever the day.
func (d *distribution) plan(ctx context.Context) error {
	c, run := d.c, d.run
	blocked, err := c.Store.BlockedByLateRefunds(ctx, c.Channels)
	if err != nil {
		return err
	}
	holds, err := c.Store.SellerHolds(ctx, run.ID)
	if err != nil {
		return err
	}
	d.heldFor = map[string]string{}
	for _, h := range holds {
		if slices.Contains(c.Channels, h.Channel) {
			d.heldFor[h.SellerID] = "its orders of the date are held for its account (" + h.Reason + "): carried until the platform gives a usable one"
		}
	}
	// A seller whose held orders a person rejected (it left the
	// platform, or is the copied row of a seller whose account it has
	// too) has no account this run found usable either: its carried
	// balance was paid to the one the run recorded, another seller's
	// maybe, once its orders were no longer held (found by a review).
	rejected, err := c.Store.SellersRejectedHeld(ctx, run.ID)
	if err != nil {
		return err
	}
	for _, h := range rejected {
		if slices.Contains(c.Channels, h.Channel) && d.heldFor[h.SellerID] == "" {
			d.heldFor[h.SellerID] = "a person rejected its orders of the date held for its account (" + h.Reason + "): carried, never paid to the account the run recorded"
		}
	}
	// What an earlier planning of the run kept and did not plan (it
	// stopped) is checked again from the start.
	if err := c.Store.ClearPayoutCandidates(ctx, run.ID, KindRevenueShare); err != nil {
		return err
	}
	var page []pipeline.PayoutCandidate
	check := func() error {
		err := d.check(ctx, page, blocked)
		page = page[:0]
		d.bindings = nil // the page's sellers are done
		return err
	}
	err = c.Store.EachPayoutCandidate(ctx, run, c.Channels, SellerAccount, func(p pipeline.PayoutCandidate) error {
		if !run.Key.Shard.Owns(p.SellerID) {
			return nil // another shard's carried balance
		}
		if len(page) >= planPage && p.SellerID != page[len(page)-1].SellerID {
			if err := check(); err != nil {
				return err
			}
		}
		page = append(page, p)
		return nil
	})
	if err == nil && len(page) > 0 {
		err = check()
	}
	if err != nil {
		return err
	}
	totals, err := c.Store.PayoutCandidateTotals(ctx, run.ID, KindRevenueShare)
	if err != nil {
		return err
	}
	for _, t := range totals {
		if err := d.planCurrency(ctx, t); err != nil {
			return err
		}
	}
	if err := d.driveOpen(ctx); err != nil {
		return err
	}
	return c.Store.ClearPayoutCandidates(ctx, run.ID, KindRevenueShare)
}

// driveOpen drives every revenue share of the run not final yet, whether
// or not its seller is a candidate now: one that paid a carried balance
// alone netted that balance, and its seller, with no item of the run, is
// no candidate any more. Left out, it was never asked about again and the
// run ended 0 with it in flight; had Infinia failed it, the balance stayed
// netted into a dead payout (found by a review). A payout found twice is
// driven once (pay).
func (d *distribution) driveOpen(ctx context.Context) error {
	// A revenue share that succeeded while the run stopped before its
	// carried items were marked paid is applied again (its Final): one
	// that paid a carried balance alone brings no candidate back.
	done, err := d.c.Store.UnappliedPayouts(ctx, d.run.ID, KindRevenueShare)
	if err != nil {
		return err
	}
	for _, e := range done {
		d.drive(e)
	}
	var after int64
	for {
		open, err := d.c.Store.OpenEffectsAfter(ctx, d.run.ID, KindRevenueShare, after, payoutPage)
		if err != nil || len(open) == 0 {
			return err
		}
		for _, e := range open {
			d.drive(e)
		}
		after = open[len(open)-1].ID
	}
}

// check decides for each candidate of a page whether it is resolved (a
// payout is already planned), carried, or to be planned: those are kept
// in the ledger for their currency's check (planCurrency).
func (d *distribution) check(ctx context.Context, page []pipeline.PayoutCandidate, blocked map[pipeline.SellerCurrency]string) error {
	c, run := d.c, d.run
	var fresh []pipeline.PayoutCandidate // candidates with a payout to plan
	var mu sync.Mutex
	// Planning asks the ledger, and Infinia only a seller's binding before
	// a payout is planned: that query alone takes a token (Pace), so a
	// re-run of a finished day waits on no bucket.
	err := c.Pacer.EachAsNeeded(ctx, len(page), nil, func(ctx context.Context, i int) error {
		p := page[i]
		subject := RevenueShareSubject(run.Key.Date, p.SellerID, p.Currency)
		e, ok, err := c.Store.LatestEffect(ctx, KindRevenueShare, subject)
		if err != nil {
			return pipeline.NotRead(err) // the run's failure: told once
		}
		switch {
		case ok && e.State != pipeline.EffectFailed:
			// Planned, in flight or paid: resolve it, whatever it is. What
			// came up since waits for the next revenue share: new carries
			// stay open, and items uploaded after a revenue share of the
			// date was planned (Pay Protocol payments verified late, a
			// trade file Infinia decided late) are carried to it - now,
			// whether it is paid or still in flight: it covers only the
			// items it was planned on, and later dates pay only their own
			// runs' items and the carried balances.
			d.drive(e)
			if p.Items > 0 && d.past != nil && e.State != pipeline.EffectSucceeded {
				// Its date past Infinia's memory and the share not paid
				// (planned and never sent, which the engine holds, or in
				// flight): the items uploaded after it are held with the
				// date (pastHold), not carried. Carried, a later date's
				// share, inside Infinia's memory and so sent, paid them,
				// while a run the ledger lost may have paid them under a
				// requestNo of this date Infinia forgot (this share
				// failed, and its next attempt netted them); the stage's
				// line said "nothing carried" (found by a review).
				return d.holdPast(ctx, p, "")
			}
			if p.Items > 0 {
				when := "was paid"
				if e.State != pipeline.EffectSucceeded {
					when = "was in flight (" + string(e.State) + ")"
				}
				return d.hold(ctx, p, pipeline.Waits(fmt.Sprintf("uploaded after revenue share %s of the date %s", e.Key, when)))
			}
			return nil
		case ok && e.Attempt >= c.MaxAttempts:
			h := pipeline.NeedsAPerson(fmt.Sprintf("revenue share %s failed %d times", subject, e.Attempt))
			if d.past != nil && p.Items > 0 {
				// Its date past Infinia's memory: the orders its failure
				// left uploaded (PayoutFailedHeld) stay held with the
				// date, not carried, the failure named for the person
				// too. Carried, as a date inside the memory carries them
				// once its attempts are spent, a later date's share,
				// inside Infinia's memory and so sent, paid them, while
				// a run the ledger lost may have paid them under a
				// requestNo of this date Infinia forgot (found by a
				// review of PayoutFailedHeld: the run after the one
				// that held them carried them).
				return d.holdPast(ctx, p, h.Reason)
			}
			return d.hold(ctx, p, h)
		}
		if p.Items == 0 && p.Carried == 0 {
			return nil // nothing new, nothing carried
		}
		if d.past != nil {
			// A new requestNo of a date past Infinia's memory: neither
			// planned nor carried. A carried balance alone waits, open,
			// for a later date's revenue share (its requestNo that
			// date's); the date's own items wait for a person, uploaded
			// and unpaid, netted into no later share (carried, a later
			// date's share would pay what this date's share, sent by a
			// run the ledger lost, may have paid).
			// They are held so (pastHold), not in progress.
			if p.Items > 0 {
				return d.holdPast(ctx, p, "")
			}
			return nil
		}
		if why := d.heldFor[p.SellerID]; why != "" {
			// The run holds the seller's orders for its account (none,
			// one Infinia cannot use, one another seller has too):
			// neither is its carried balance paid to the account the run
			// recorded. Planned, it paid a balance carried from earlier
			// dates to an id another seller has too (found by a review).
			// The seller check needs the person (exit 4); one a person
			// rejected is carried to a later date's run that finds its
			// account usable.
			return d.hold(ctx, p, pipeline.Waits(why))
		}
		net, err := p.Net()
		if err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		cur := p.Currency
		switch {
		case p.Items > 0 && p.Payable == 0 && p.Carried == 0:
			// Everything refunded or taken as commission: settled, nothing to send.
			_, err := c.Store.SetItemsState(ctx, run.ID, p.SellerID, cur, c.Channels, "uploaded", "paid", "seller share is 0: no payout", "", "")
			return err
		case blocked[pipeline.SellerCurrency{SellerID: p.SellerID, Currency: cur}] != "":
			// Never pay on bad data: what the seller owes back is unknown.
			// The platform matcher reports the late refund (bad_data) on
			// the date that read it; every run that carries the seller for
			// it needs a person too (exit 4), as it does not pass by itself.
			return d.hold(ctx, p, pipeline.NeedsAPerson(fmt.Sprintf("late refund %s of one of its orders cannot be right: carried until it is corrected",
				blocked[pipeline.SellerCurrency{SellerID: p.SellerID, Currency: cur}])))
		case net < 0:
			return d.hold(ctx, p, pipeline.Waits(fmt.Sprintf("net %s is negative (clawbacks exceed what is owed): carried, never sent", pipeline.Money{Minor: net, Currency: cur})))
		case net == 0:
			return d.hold(ctx, p, pipeline.Waits("net is 0 after the carried balance: nothing to send"))
		case net < c.MinPayout[cur]:
			return d.hold(ctx, p, pipeline.Waits(fmt.Sprintf("net %s is below the minimum payout of %s", pipeline.Money{Minor: net, Currency: cur}, pipeline.Money{Minor: c.MinPayout[cur], Currency: cur})))
		case p.Account == "":
			return d.hold(ctx, p, pipeline.NeedsAPerson("no Infinia seller id"))
		}
		status, err := d.binding(ctx, p)
		if pipeline.SubjectOnly(err) {
			// A seller Infinia does not know (or will not answer about)
			// is this seller's problem only: carried, for a person.
			reason := fmt.Sprintf("Infinia binding query for %s: %v", p.Account, err)
			if pipeline.IsNotFound(err) {
				reason = fmt.Sprintf("Infinia does not know seller %s (binding query: %v): carried; bind the seller (settle sellers bind --store-url URL %s) and run the date again", p.Account, err, p.SellerID)
			}
			return d.hold(ctx, p, pipeline.NeedsAPerson(reason))
		}
		if err != nil {
			return fmt.Errorf("binding of %s: %w", p.SellerID, err)
		}
		switch status {
		case StatusActive:
		case StatusPending: // the seller is completing it: a later run pays
			return d.hold(ctx, p, pipeline.Waits("Infinia binding is "+status))
		default: // REJECTED, FROZEN: a person must act; a nightly run does not wait quietly
			return d.hold(ctx, p, pipeline.NeedsAPerson("Infinia binding is "+status+": the seller or Infinia must act before it is paid"))
		}
		mu.Lock()
		fresh = append(fresh, p)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	return c.Store.AddPayoutCandidates(ctx, run.ID, KindRevenueShare, fresh)
}

// planCurrency checks the platform balance for a currency's new payouts
// (kept by check; need is what they add up to) and each seller's
// available share, and plans those that pass, a page at a time.
func (d *distribution) planCurrency(ctx context.Context, need pipeline.Money) error {
	c, run := d.c, d.run
	cur := need.Currency
	// holdAll carries every payout of the currency with h's reason: one
	// cause, said once, first among the stage's problems and counted for
	// each seller, not a line a seller (a busy night's first sellers'
	// lines hid it: found by a review of the logs).
	holdAll := func(h *pipeline.Hold) error {
		n := 0
		err := d.eachKept(ctx, cur, func(ps []pipeline.PayoutCandidate) error {
			for _, p := range ps {
				if err := d.carry(ctx, p, h.Reason); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		d.mu.Lock()
		defer d.mu.Unlock()
		d.carried += n
		if h.NeedsPerson && n > 0 {
			d.problems.Lead(fmt.Sprintf("%s, %d sellers' revenue shares carried: %s", cur, n, h.Reason), n)
		}
		return err
	}
	// What settle's other runs paying now (the other shards of the day, a
	// backfill beside the nightly run) may still take: read before the
	// balance, so that a payout of theirs Infinia takes meanwhile is
	// counted twice at worst, never missed. Every run keeps its payouts
	// (check) before it asks, and keeps them until they are planned, so
	// of two runs checking at once the later sees the earlier's: each
	// checked only its own need, both sent, and Infinia failed what came
	// second (found by a review).
	others, err := c.Store.PayingRuns(ctx, run.ID, KindRevenueShare)
	if err != nil {
		return err
	}
	var outstanding int64
	if len(others) > 0 {
		if outstanding, err = c.Store.OutstandingInCurrency(ctx, run, runIDs(others), KindRevenueShare, cur); err != nil {
			return err
		}
	}
	balance, err := c.API.Balance(ctx, pipeline.QueryRequestNo("BQ"), cur)
	if pipeline.SubjectOnly(err) {
		// Infinia refuses the currency itself: its payouts wait, the
		// other currencies go on.
		return holdAll(pipeline.NeedsAPerson(fmt.Sprintf("Infinia refused the balance query in %s: %v", cur, err)))
	}
	if err != nil {
		return fmt.Errorf("platform balance in %s: %w", cur, err)
	}
	if total := addCapped(need.Minor, outstanding); balance < total {
		// Short: unless what Infinia paid already under the very
		// requestNos planned now (a ledger restored from a backup, see
		// atInfinia) is what it lacks.
		taken, err := d.takenInCurrency(ctx, cur)
		if err != nil {
			return err
		}
		if balance < total-taken {
			// Said so that it cannot be read as short by the balance (it
			// read "platform balance 0.001 KWD short of 2883.805 KWD").
			besides := ""
			if outstanding > 0 {
				besides = fmt.Sprintf(" and the %s settle's other runs paying now (%s) may still take", pipeline.Money{Minor: outstanding, Currency: cur}, runNames(others))
			}
			return holdAll(pipeline.NeedsAPerson(fmt.Sprintf("platform balance %s, short of the %s this run's %s payouts need%s: nothing sent in %s; top up the platform's Infinia account, then run the date again",
				pipeline.Money{Minor: balance, Currency: cur}, need, cur, besides, cur)))
		}
	}
	// Each seller's available share is asked and its payout planned as
	// fast as Infinia's limits allow.
	return d.eachKept(ctx, cur, func(ps []pipeline.PayoutCandidate) error {
		// What the other runs paying now may still take from these
		// sellers' available shares, read before they are asked (as the
		// balance above).
		owed, err := d.outstandingOf(ctx, others, cur, ps)
		if err != nil {
			return err
		}
		return c.Pacer.Each(ctx, len(ps), nil, func(ctx context.Context, i int) error {
			p := ps[i]
			net, _ := p.Net()
			avail, err := c.API.AvailableShare(ctx, pipeline.QueryRequestNo("RSA"), p.Account, cur)
			if pipeline.SubjectOnly(err) {
				reason := fmt.Sprintf("Infinia's available share query for %s refused: %v", p.Account, err)
				return d.hold(ctx, p, pipeline.NeedsAPerson(reason))
			}
			if err != nil {
				return fmt.Errorf("available share of %s: %w", p.SellerID, err)
			}
			next, ok, err := d.next(ctx, p, true)
			if err != nil || !ok {
				return err
			}
			if avail < net {
				reason := fmt.Sprintf("Infinia shows %s available, we owe %s", pipeline.Money{Minor: avail, Currency: cur}, pipeline.Money{Minor: net, Currency: cur})
				// Sent only when Infinia paid it, or is paying it, under
				// that requestNo (a restored ledger's), or under a later
				// one of the share after failing this one: the money is
				// gone to it already. One Infinia failed, and no later
				// one paid, moved nothing, and the share is short indeed;
				// and an answer other than "not
				// found" about a requestNo never sent (not found has no
				// published code) must not lift the check.
				held, err := d.atInfinia(ctx, next)
				switch {
				case errors.Is(err, pipeline.ErrNotRead), errors.Is(err, pipeline.ErrNotAnswering):
					return err // the ledger's failure, or Infinia not answering: the run's, no payout held for it
				case refusedOurKey(err):
					// Our credentials refused: Infinia said nothing of the
					// share. The run's (ourKeyRefused), not the seller's
					// to hold for a person.
					return fmt.Errorf("revenue share %s of %s at Infinia: %w", next.Key, p.SellerID, err)
				case errors.Is(err, pipeline.ErrNoAnswer):
					// No answer says nothing of the seller: the run's, as
					// for its available share (it was held, for a person).
					return fmt.Errorf("revenue share %s of %s at Infinia: %w", next.Key, p.SellerID, err)
				case err != nil:
					reason += fmt.Sprintf(" (and Infinia's status of requestNo %s: %v)", next.Key, err)
				case held == pipeline.OutcomeFailed:
					reason += fmt.Sprintf(" (Infinia failed requestNo %s, this share's next: a backup of the ledger restored?)", next.Key)
				}
				if err != nil || (held != pipeline.OutcomeSucceeded && held != pipeline.OutcomePending) {
					return d.hold(ctx, p, pipeline.NeedsAPerson(reason))
				}
			} else if other := owed[p.SellerID]; other > 0 && avail < addCapped(net, other) {
				// Enough for this run's net alone, not beside what another
				// run of the seller (another date's) may still take: both
				// sent, Infinia failed the second.
				return d.hold(ctx, p, pipeline.NeedsAPerson(fmt.Sprintf("Infinia shows %s available, we owe %s, and settle's other runs paying now (%s) may still take %s of it",
					pipeline.Money{Minor: avail, Currency: cur}, pipeline.Money{Minor: net, Currency: cur}, runNames(others), pipeline.Money{Minor: other, Currency: cur})))
			}
			e, err := c.Store.PlanPayout(ctx, run, p.SellerID, c.Channels, next)
			if errors.Is(err, pipeline.ErrKeyTaken) && next.Key == RevenueShareRequestNo(run.Key.Date, p.SellerID, cur, next.Attempt) {
				// Another seller's revenue share holds its requestNo
				// (takenSalt): nothing was recorded; it is planned under
				// its requestNo "taken".
				next.Key = RevenueShareRequestNoTaken(run.Key.Date, p.SellerID, cur, next.Attempt)
				e, err = c.Store.PlanPayout(ctx, run, p.SellerID, c.Channels, next)
			}
			if err != nil {
				if errors.Is(err, pipeline.ErrBalanceMoved) {
					d.problem("%v", err)
					return nil
				}
				if errors.Is(err, pipeline.ErrKeyTaken) {
					// Its requestNo is another seller's, and so is its
					// requestNo "taken": sent, it would be answered as that
					// seller's share. This seller's alone waits, for a
					// person; the others are paid.
					return d.hold(ctx, p, pipeline.NeedsAPerson(fmt.Sprintf("revenue share not sent: %v", err)))
				}
				return err
			}
			d.drive(e)
			return nil
		})
	})
}

// outstandingOf returns, by seller of ps, what the runs paying now
// (others) keep to check in cur or have recorded that Infinia has not
// taken yet: nil when there are none. A seller whose kept payout is stale
// (its carried balance is no longer the one it nets: another run netted
// or carried entries since) has none: what it nets, that run's payout
// holds too, and PlanPayout refuses it (pipeline.ErrBalanceMoved): held
// for the others, it read "Infinia shows ... available" where the
// balance had moved (found by trying it).
func (d *distribution) outstandingOf(ctx context.Context, others []*pipeline.Run, cur pipeline.Currency, ps []pipeline.PayoutCandidate) (map[string]int64, error) {
	if len(others) == 0 {
		return nil, nil
	}
	var dates []pipeline.Date
	for _, r := range others {
		if !slices.Contains(dates, r.Key.Date) {
			dates = append(dates, r.Key.Date)
		}
	}
	sellers := make([]string, 0, len(ps))
	subjects := make([]string, 0, len(ps)*len(dates))
	for _, p := range ps {
		sellers = append(sellers, p.SellerID)
		for _, dt := range dates {
			subjects = append(subjects, RevenueShareSubject(dt, p.SellerID, cur))
		}
	}
	kept, recorded, carried, err := d.c.Store.OutstandingOf(ctx, d.run, runIDs(others), KindRevenueShare, cur, sellers, subjects)
	if err != nil {
		return nil, err
	}
	for subject, v := range recorded {
		if s := subjectSeller(subject); s != "" {
			kept[s] = addCapped(kept[s], v)
		}
	}
	for _, p := range ps {
		if carried[p.SellerID] != p.Carried {
			delete(kept, p.SellerID)
		}
	}
	return kept, nil
}

// runIDs are the ids of runs.
func runIDs(runs []*pipeline.Run) []int64 {
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids
}

// runNames names runs, the first three and how many more.
func runNames(runs []*pipeline.Run) string {
	var names []string
	for i, r := range runs {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(runs)-3))
			break
		}
		names = append(names, r.Key.String())
	}
	return strings.Join(names, ", ")
}

// addCapped is a+b for amounts of 0 or more, math.MaxInt64 where it would
// overflow: a sum too large for int64 is more than any balance.
func addCapped(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// next is the revenue share p's payout would be now: the next attempt
// after the ledger's latest of its date, seller and currency (the first
// when there is none). ok is false when no further attempt may be made
// (the problem noted when note is true).
func (d *distribution) next(ctx context.Context, p pipeline.PayoutCandidate, note bool) (e pipeline.Effect, ok bool, err error) {
	run, cur := d.run, p.Currency
	net, _ := p.Net()
	subject := RevenueShareSubject(run.Key.Date, p.SellerID, cur)
	attempt := 1
	if prev, ok, err := d.c.Store.LatestEffect(ctx, KindRevenueShare, subject); err != nil {
		return pipeline.Effect{}, false, pipeline.NotRead(err) // the run's failure: told once
	} else if ok {
		next, err := pipeline.NextAttempt(prev, d.c.MaxAttempts, func(a int) string { return RevenueShareRequestNo(run.Key.Date, p.SellerID, cur, a) })
		if err != nil {
			if note {
				d.problem("%v", err)
			}
			return pipeline.Effect{}, false, nil
		}
		attempt = next.Attempt
	}
	return pipeline.Effect{RunID: run.ID, Kind: KindRevenueShare, Subject: subject,
		Attempt: attempt, Key: RevenueShareRequestNo(run.Key.Date, p.SellerID, cur, attempt), Currency: cur, Amount: net}, true, nil
}

// atInfinia returns what Infinia holds under revenue share e's requestNo,
// e not planned yet: OutcomeNotFound when nothing. In a ledger that holds
// every request it sent, it is always nothing. A ledger restored from a
// backup taken before the share was sent plans it again under the same
// deterministic requestNo, while the platform balance and the seller's
// available share at Infinia went to it already: held as short, it was
// carried, and Infinia's payment was known to no one but Infinia. Sent
// again under its requestNo instead, it moves nothing (Infinia replays
// it, or refuses the repeat and the sender asks its status), and the
// ledger records what Infinia did. The caller sends it only when Infinia
// paid it or is paying it: one Infinia failed is held as short, for a
// person. A share Infinia holds under the requestNo with another amount
// is not ours to adopt: the sender's check of the answer leaves it to a
// person.
//
// A requestNo Infinia failed whose later attempt (the next requestNo of
// the share, up to MaxAttempts) Infinia paid or is paying answers that
// later attempt's status: the backup was taken before the date's run
// whose share Infinia failed, and a later run paid it under its next
// requestNo. e is sent then, Infinia answers FAILED again (it moves
// nothing), and the ledger records the failure Infinia holds; the next
// run plans the later attempt and finds it paid. Held as short instead
// (Infinia had failed e), the share was carried for a person on every run
// of the date, and so were the later dates that netted it, while Infinia
// had paid it.
func (d *distribution) atInfinia(ctx context.Context, e pipeline.Effect) (pipeline.OutcomeStatus, error) {
	if d.c.Payouts == nil {
		return pipeline.OutcomeNotFound, nil // nothing to ask (a test's planning alone)
	}
	st, err := d.heldUnder(ctx, e)
	if err != nil || st != pipeline.OutcomeFailed {
		return st, err
	}
	later := e
	for later.Attempt < d.c.MaxAttempts {
		later.Attempt++
		later.Key = RevenueShareRequestNo(d.run.Key.Date, subjectSeller(e.Subject), e.Currency, later.Attempt)
		lst, err := d.heldUnder(ctx, later)
		switch {
		case err != nil:
			return pipeline.OutcomeFailed, fmt.Errorf("its next requestNo %s: %w", later.Key, err)
		case lst == pipeline.OutcomeSucceeded || lst == pipeline.OutcomePending:
			return lst, nil
		case lst != pipeline.OutcomeFailed:
			return pipeline.OutcomeFailed, nil // never sent: e's failure is the last
		}
	}
	return pipeline.OutcomeFailed, nil
}

// heldUnder returns what Infinia holds under revenue share e's requestNo
// (atInfinia).
func (d *distribution) heldUnder(ctx context.Context, e pipeline.Effect) (pipeline.OutcomeStatus, error) {
	o, err := pipeline.Ask(ctx, func(ctx context.Context) (pipeline.Outcome, error) { return d.c.Payouts.Query(ctx, e) })
	if err != nil {
		return pipeline.OutcomeNotFound, err
	}
	return o.Status, nil
}

// takenInCurrency sums the nets of the payouts check kept in a currency
// that Infinia already holds, paid or paying, under the requestNos they
// would be sent with (atInfinia): what the platform balance has paid for
// them already. It is asked only when the balance is short of them all.
func (d *distribution) takenInCurrency(ctx context.Context, cur pipeline.Currency) (int64, error) {
	var (
		mu    sync.Mutex
		taken int64
	)
	err := d.eachKept(ctx, cur, func(ps []pipeline.PayoutCandidate) error {
		return d.c.Pacer.Each(ctx, len(ps), nil, func(ctx context.Context, i int) error {
			e, ok, err := d.next(ctx, ps[i], false)
			if err != nil || !ok {
				return err
			}
			st, err := d.atInfinia(ctx, e)
			if errors.Is(err, pipeline.ErrNotRead) || errors.Is(err, pipeline.ErrNotAnswering) || errors.Is(err, pipeline.ErrNoAnswer) {
				// The ledger's failure, the run's; or Infinia not
				// answering (this question, or NotAnsweringAfter in a
				// row): what it holds is not known, and the balance not
				// taken as short for it. A question with no answer read
				// as "nothing held" carried every seller of the currency,
				// for a person, when fewer than NotAnsweringAfter were
				// asked (the breaker never opened).
				return err
			}
			if err == nil && (st == pipeline.OutcomeSucceeded || st == pipeline.OutcomePending) {
				mu.Lock()
				taken += e.Amount
				mu.Unlock()
			}
			return nil
		})
	})
	return taken, err
}

// eachKept calls fn with the payouts check kept in a currency, a page at
// a time, by seller.
func (d *distribution) eachKept(ctx context.Context, cur pipeline.Currency, fn func([]pipeline.PayoutCandidate) error) error {
	after := ""
	for {
		ps, err := d.c.Store.PayoutCandidatesAfter(ctx, d.run.ID, KindRevenueShare, cur, after, planPage)
		if err != nil || len(ps) == 0 {
			return err
		}
		if err := fn(ps); err != nil {
			return err
		}
		after = ps[len(ps)-1].SellerID
	}
}

// todoPayout is a payout to drive: its effect's id, and its sends when
// it was found (a send since is a payout "sent now").
type todoPayout struct {
	id    int64
	sends int
}

// drive adds e to the payouts to drive.
func (d *distribution) drive(e pipeline.Effect) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.todo = append(d.todo, todoPayout{e.ID, e.Sends})
}

// payoutPage is how many payouts the engine reads from the ledger at a
// time.
const payoutPage = 1000

// pay drives every planned payout to a final state with the effect engine
// (sent under Infinia's limits, PROCESSING ones asked about in waves until
// c.Wait after they are sent) and applies each to the items and the carried balance.
func (d *distribution) pay(ctx context.Context) error {
	c, run := d.c, d.run
	progress := pipeline.ProgressFrom(ctx)
	todo := d.todo
	slices.SortFunc(todo, func(a, b todoPayout) int { return cmp.Compare(a.id, b.id) })
	// A payout found twice is driven once (EffectsByID reads each id once).
	todo = slices.CompactFunc(todo, func(a, b todoPayout) bool { return a.id == b.id })
	progress.SetTotal(int64(len(todo)))
	before := func(id int64) int {
		i, _ := slices.BinarySearchFunc(todo, id, func(p todoPayout, id int64) int { return cmp.Compare(p.id, id) })
		return todo[i].sends
	}
	sender := pipeline.HoldFirstSends(c.Payouts, d.past)
	en := &pipeline.Engine{Store: c.Store, Pacer: c.Pacer, FirstPoll: c.FirstPoll, Poll: c.Poll, Wait: c.Wait,
		// A revenue share the ledger holds never sent is not sent when
		// its date is past Infinia's memory (d.past).
		Sender: func(pipeline.Effect) pipeline.EffectSender { return sender },
		Final: func(ctx context.Context, e pipeline.Effect) error {
			defer progress.Add(1)
			seller, cur := subjectSeller(e.Subject), e.Currency
			if e.State == pipeline.EffectSucceeded {
				if err := c.Store.PayoutSucceeded(ctx, run, seller, cur, c.Channels, e); err != nil {
					return err
				}
				if err := recordAdopted(ctx, c.Final, c.Answers, e); err != nil {
					return err
				}
				d.mu.Lock()
				d.paid++
				if e.Sends > before(e.ID) {
					d.sent++
				}
				d.mu.Unlock()
				return nil
			}
			h := pipeline.NeedsAPerson("revenue share " + e.Key + " failed: " + e.LastError)
			if d.past != nil {
				// Its items held with the date (failed), not carried:
				// counted among the sellers held past Infinia's memory,
				// the failure named for the person too.
				d.heldPast(seller, cur, h.Reason)
			} else {
				d.held(seller, cur, h)
			}
			if err := d.failed(ctx, e, h.Reason); err != nil {
				return err
			}
			return recordAdopted(ctx, c.Final, c.Answers, e)
		},
		Error: func(ctx context.Context, e pipeline.Effect, err error) error {
			if d.past != nil && e.Sends == 0 && errors.Is(err, pipeline.ErrPastMemory) {
				// Never sent, its date past Infinia's memory
				// (HoldFirstSends): left planned, for a person, counted
				// under the one line that says why (d.past); the orders
				// it covers held so (pastHold), not in progress. They
				// showed in progress, and each share was named with the
				// whole of d.past (found by a review).
				progress.Add(1)
				d.heldPast(subjectSeller(e.Subject), e.Currency, "")
				_, err := c.Store.HoldPayoutItems(ctx, run.ID, subjectSeller(e.Subject), e.Currency, c.Channels, e.Key, pastHold)
				return err
			}
			if pipeline.SubjectOnly(err) {
				// Infinia refuses to tell us about this one payout, or no
				// longer knows one it answered before (its reference
				// recorded): it stays as it is (never sent again blindly),
				// for a person; the others go on.
				progress.Add(1)
				d.problem("revenue share %s to %s: %v", e.Key, subjectSeller(e.Subject), err)
				return nil
			}
			return fmt.Errorf("revenue share %s: %w", e.Key, err)
		},
	}
	next := todo
	res, err := en.RunFeed(ctx, func(ctx context.Context) ([]pipeline.Effect, error) {
		page := next[:min(payoutPage, len(next))]
		next = next[len(page):]
		if len(page) == 0 {
			return nil, nil
		}
		ids := make([]int64, len(page))
		for i, p := range page {
			ids[i] = p.id
		}
		return c.Store.EffectsByID(ctx, ids)
	})
	if refusedOurKey(err) {
		// The engine stopped at the first refusal: every request would
		// be refused alike, and each one refused was left unknown. The
		// shares it left sent and not final are the stage's to say
		// (stopped), as only a run of this date asks about them.
		if line, n := res.LeftAtStop("revenue shares", "Infinia"); n > 0 {
			d.mu.Lock()
			d.problems.AddMany(line, n)
			d.mu.Unlock()
		}
		return ourKeyRefused(err, "during the revenue shares, and nothing more was sent",
			"a revenue share refused so moved nothing, and each one sent is asked about by its requestNo before it is sent again")
	}
	if err != nil {
		return err
	}
	return res.StillProcessing("revenue shares", "Infinia", c.Wait)
}

// refusedOurKey reports whether err is Infinia refusing our credentials
// (ErrCredentials, a usage error): our key pair changed at Infinia under
// the run, say - not a refusal of one request.
func refusedOurKey(err error) bool {
	return errors.Is(err, ErrCredentials) && pipeline.KindOf(err) == pipeline.KindUsage
}

// ourKeyRefused is a stage's error once Infinia refused our credentials
// (err, refusedOurKey): a configuration error (exit 2) in one line saying
// when (what was or was not sent), what to check, and why running again
// is safe (rerun). The client's own text named no flag.
func ourKeyRefused(err error, when, rerun string) error {
	return pipeline.Errorf(pipeline.KindUsage, "Infinia", "refused our credentials %s: "+
		"check --%s (the public key Infinia holds for it: changed at Infinia?) and --%s, then run again: %s: %w",
		when, "infinia-private-key-file", "infinia-app-id", rerun, err)
}
