package infiniapay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
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
// Infinia is below the net. A revenue share that fails opens the balance
// it netted again and carries its items: nothing is lost, and the next
// run pays it. A payout already planned is always resolved first, never
// re-checked or re-planned.
func DistributeStage(c StageConfig) pipeline.StageFunc {
	c.defaults()
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		d := &distribution{c: &c, run: run}
		if err := d.undoFailed(ctx); err != nil {
			return "", err
		}
		if err := d.plan(ctx); err != nil {
			return "", err
		}
		if err := d.pay(ctx); err != nil {
			return "", err
		}
		summary := fmt.Sprintf("%d revenue shares paid (%d sent now), %d carried forward", d.paid, d.sent, d.carried)
		return summary, pipeline.NeedsPerson(d.problems)
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
	problems            []string
	bindings            map[string]*sellerBinding // Infinia seller id -> its binding, asked once a run
}

// sellerBinding is one seller's binding as planning found it.
type sellerBinding struct {
	once   sync.Once
	status string
	err    error
}

// binding returns the seller's binding, refreshed from Infinia once in the
// run's planning and recorded in the ledger: Infinia binds a seller, not
// a currency, so the seller's currencies share the one query. Only the
// candidate that makes the query takes a token (Pace); the others of the
// seller wait for its answer.
func (d *distribution) binding(ctx context.Context, p candidate) (string, error) {
	d.mu.Lock()
	if d.bindings == nil {
		d.bindings = map[string]*sellerBinding{}
	}
	b, ok := d.bindings[p.InfiniaID]
	if !ok {
		b = &sellerBinding{}
		d.bindings[p.InfiniaID] = b
	}
	d.mu.Unlock()
	b.once.Do(func() {
		if b.err = pipeline.Pace(ctx); b.err != nil { // the one request of planning: its token
			return
		}
		b.status, b.err = d.c.API.BindingStatus(ctx, pipeline.QueryRequestNo("ABQ"), p.InfiniaID)
		if b.err == nil {
			b.err = d.c.Store.SetBinding(ctx, pipeline.Binding{SellerID: p.SellerID, ProviderSellerID: p.InfiniaID, Status: b.status, Source: "query"})
		}
	})
	return b.status, b.err
}

// candidate is what a run may pay one seller in one currency: its own
// uploaded items and the seller's open carried balance.
type candidate struct {
	SellerID  string
	Currency  pipeline.Currency
	Payable   int64 // the run's uploaded items
	Items     int64
	Carried   int64 // open balance, signed
	InfiniaID string
}

func (p candidate) net() (int64, error) { return pipeline.Add(p.Payable, p.Carried) }

func (d *distribution) problem(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.problems = append(d.problems, fmt.Sprintf(format, args...))
}

// held counts a seller's revenue share held (carried to a later one)
// with h; a hold that needs a person is one of the run's problems (exit
// 4), named by the seller and currency.
func (d *distribution) held(seller string, cur pipeline.Currency, h *pipeline.Hold) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.carried++
	if h.NeedsPerson {
		d.problems = append(d.problems, fmt.Sprintf("seller %s %s: %s", seller, cur, h.Reason))
	}
}

// hold carries the run's uploaded items of the candidate (if any) into
// the seller's balance with h's reason, and counts it (held).
func (d *distribution) hold(ctx context.Context, p candidate, h *pipeline.Hold) error {
	d.held(p.SellerID, p.Currency, h)
	subject := RevenueShareSubject(d.run.Key.Date, p.SellerID, p.Currency)
	_, _, err := d.c.Store.CarryItems(ctx, d.run, p.SellerID, p.Currency, d.c.Channels, subject, h.Reason)
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
		if err := d.c.Store.PayoutFailed(ctx, d.run, subjectSeller(e.Subject), e.Currency, d.c.Channels, e,
			"revenue share "+e.Key+" failed: "+e.LastError); err != nil {
			return err
		}
	}
	return nil
}

// candidates merges the run's payables with the open carried balances of
// the sellers of its shard.
func (d *distribution) candidates(ctx context.Context) ([]candidate, error) {
	c, run := d.c, d.run
	payables, err := c.Store.Payables(ctx, run.ID, "uploaded", c.Channels)
	if err != nil {
		return nil, err
	}
	carries, err := c.Store.OpenCarries(ctx, run.Key.Date)
	if err != nil {
		return nil, err
	}
	sellers, err := c.Store.AccountsAt(ctx, run.ID, SellerAccount)
	if err != nil {
		return nil, err
	}
	type key struct {
		seller string
		cur    pipeline.Currency
	}
	byKey := map[key]*candidate{}
	var out []*candidate
	get := func(seller string, cur pipeline.Currency) *candidate {
		k := key{seller, cur}
		if p, ok := byKey[k]; ok {
			return p
		}
		p := &candidate{SellerID: seller, Currency: cur, InfiniaID: sellers[seller]}
		byKey[k] = p
		out = append(out, p)
		return p
	}
	for _, p := range payables {
		q := get(p.SellerID, p.Currency)
		q.Payable, q.Items = p.Amount, p.Items
	}
	for _, cr := range carries {
		if !run.Key.Shard.Owns(cr.SellerID) {
			continue
		}
		q := get(cr.SellerID, cr.Currency)
		q.Carried = cr.Amount
		if q.InfiniaID == "" {
			q.InfiniaID = cr.Account
		}
	}
	res := make([]candidate, len(out))
	for i, p := range out {
		res[i] = *p
	}
	sort.Slice(res, func(i, j int) bool {
		if res[i].SellerID != res[j].SellerID {
			return res[i].SellerID < res[j].SellerID
		}
		return res[i].Currency < res[j].Currency
	})
	return res, nil
}

// plan decides, for every candidate, whether it is resolved (a payout is
// already planned), carried, or planned now; it fills d.todo.
func (d *distribution) plan(ctx context.Context) error {
	c, run := d.c, d.run
	cands, err := d.candidates(ctx)
	if err != nil {
		return err
	}
	blocked, err := c.Store.BlockedByLateRefunds(ctx)
	if err != nil {
		return err
	}
	fresh := map[pipeline.Currency][]candidate{} // candidates with a payout to plan
	var mu sync.Mutex
	// Planning asks the ledger, and Infinia only a seller's binding before
	// a payout is planned: that query alone takes a token (Pace), so a
	// re-run of a finished day waits on no bucket.
	err = c.Pacer.EachAsNeeded(ctx, len(cands), nil, func(ctx context.Context, i int) error {
		p := cands[i]
		subject := RevenueShareSubject(run.Key.Date, p.SellerID, p.Currency)
		e, ok, err := c.Store.LatestEffect(ctx, KindRevenueShare, subject)
		if err != nil {
			return err
		}
		switch {
		case ok && e.State != pipeline.EffectFailed:
			// Planned, in flight or paid: resolve it, whatever it is. What
			// came up since waits for the next revenue share: new carries
			// stay open, and items uploaded after a revenue share of the
			// date was paid (Pay Protocol payments verified late) are
			// carried to it.
			d.drive(e)
			if e.State == pipeline.EffectSucceeded && p.Items > 0 {
				return d.hold(ctx, p, pipeline.Waits(fmt.Sprintf("uploaded after revenue share %s of the date was paid", e.Key)))
			}
			return nil
		case ok && e.Attempt >= c.MaxAttempts:
			return d.hold(ctx, p, pipeline.NeedsAPerson(fmt.Sprintf("revenue share %s failed %d times", subject, e.Attempt)))
		}
		if p.Items == 0 && p.Carried == 0 {
			return nil // nothing new, nothing carried
		}
		net, err := p.net()
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
			// The platform matcher reports the late refund (bad_data, exit 4).
			return d.hold(ctx, p, pipeline.Waits(fmt.Sprintf("late refund %s of one of its orders cannot be right: carried until it is corrected",
				blocked[pipeline.SellerCurrency{SellerID: p.SellerID, Currency: cur}])))
		case net < 0:
			return d.hold(ctx, p, pipeline.Waits(fmt.Sprintf("net %s is negative (clawbacks exceed what is owed): carried, never sent", pipeline.Money{Minor: net, Currency: cur})))
		case net == 0:
			return d.hold(ctx, p, pipeline.Waits("net is 0 after the carried balance: nothing to send"))
		case net < c.MinPayout[cur]:
			return d.hold(ctx, p, pipeline.Waits(fmt.Sprintf("net %s is below the minimum payout of %s", pipeline.Money{Minor: net, Currency: cur}, pipeline.Money{Minor: c.MinPayout[cur], Currency: cur})))
		case p.InfiniaID == "":
			return d.hold(ctx, p, pipeline.NeedsAPerson("no Infinia seller id"))
		}
		status, err := d.binding(ctx, p)
		if pipeline.SubjectOnly(err) {
			// A seller Infinia does not know (or will not answer about)
			// is this seller's problem only: carried, for a person.
			reason := fmt.Sprintf("Infinia binding query for %s: %v", p.InfiniaID, err)
			if pipeline.IsNotFound(err) {
				reason = fmt.Sprintf("Infinia does not know seller %s (binding query: %v)", p.InfiniaID, err)
			}
			return d.hold(ctx, p, pipeline.NeedsAPerson(reason))
		}
		if err != nil {
			return fmt.Errorf("binding of %s: %w", p.SellerID, err)
		}
		if status != StatusActive {
			return d.hold(ctx, p, pipeline.Waits("Infinia binding is "+status))
		}
		mu.Lock()
		fresh[cur] = append(fresh[cur], p)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	currencies := make([]pipeline.Currency, 0, len(fresh))
	for cur, ps := range fresh {
		sort.Slice(ps, func(i, j int) bool { return ps[i].SellerID < ps[j].SellerID })
		currencies = append(currencies, cur)
	}
	sort.Slice(currencies, func(i, j int) bool { return currencies[i] < currencies[j] })
	for _, cur := range currencies {
		if err := d.planCurrency(ctx, cur, fresh[cur]); err != nil {
			return err
		}
	}
	return nil
}

// planCurrency checks the platform balance for a currency's new payouts and
// each seller's available share, and plans those that pass.
func (d *distribution) planCurrency(ctx context.Context, cur pipeline.Currency, ps []candidate) error {
	c, run := d.c, d.run
	var need int64
	for _, p := range ps {
		net, err := p.net()
		if err == nil {
			need, err = pipeline.Add(need, net)
		}
		if err != nil {
			return err
		}
	}
	balance, err := c.API.Balance(ctx, pipeline.QueryRequestNo("BQ"), cur)
	if pipeline.SubjectOnly(err) {
		// Infinia refuses the currency itself: its payouts wait, the
		// other currencies go on.
		h := pipeline.NeedsAPerson(fmt.Sprintf("Infinia refused the balance query in %s: %v", cur, err))
		for _, p := range ps {
			if err := d.hold(ctx, p, h); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("platform balance in %s: %w", cur, err)
	}
	if balance < need {
		h := pipeline.NeedsAPerson(fmt.Sprintf("platform balance %s short of %s", pipeline.Money{Minor: balance, Currency: cur}, pipeline.Money{Minor: need, Currency: cur}))
		for _, p := range ps {
			if err := d.hold(ctx, p, h); err != nil {
				return err
			}
		}
		return nil
	}
	// Each seller's available share is asked and its payout planned as
	// fast as Infinia's limits allow.
	return c.Pacer.Each(ctx, len(ps), nil, func(ctx context.Context, i int) error {
		p := ps[i]
		net, _ := p.net()
		avail, err := c.API.AvailableShare(ctx, pipeline.QueryRequestNo("RSA"), p.InfiniaID, cur)
		if pipeline.SubjectOnly(err) {
			reason := fmt.Sprintf("Infinia's available share query for %s refused: %v", p.InfiniaID, err)
			if err := d.hold(ctx, p, pipeline.NeedsAPerson(reason)); err != nil {
				return err
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("available share of %s: %w", p.SellerID, err)
		}
		if avail < net {
			reason := fmt.Sprintf("Infinia shows %s available, we owe %s", pipeline.Money{Minor: avail, Currency: cur}, pipeline.Money{Minor: net, Currency: cur})
			if err := d.hold(ctx, p, pipeline.NeedsAPerson(reason)); err != nil {
				return err
			}
			return nil
		}
		subject := RevenueShareSubject(run.Key.Date, p.SellerID, cur)
		attempt := 1
		if prev, ok, err := c.Store.LatestEffect(ctx, KindRevenueShare, subject); err != nil {
			return err
		} else if ok {
			next, err := pipeline.NextAttempt(prev, c.MaxAttempts, func(a int) string { return RevenueShareRequestNo(run.Key.Date, p.SellerID, cur, a) })
			if err != nil {
				d.problem("%v", err)
				return nil
			}
			attempt = next.Attempt
		}
		e, err := c.Store.PlanPayout(ctx, run, p.SellerID, c.Channels, pipeline.Effect{RunID: run.ID, Kind: KindRevenueShare, Subject: subject,
			Attempt: attempt, Key: RevenueShareRequestNo(run.Key.Date, p.SellerID, cur, attempt), Currency: cur, Amount: net})
		if err != nil {
			if errors.Is(err, pipeline.ErrBalanceMoved) {
				d.problem("%v", err)
				return nil
			}
			return err
		}
		d.drive(e)
		return nil
	})
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
	en := &pipeline.Engine{Store: c.Store, Pacer: c.Pacer, FirstPoll: c.FirstPoll, Poll: c.Poll, Wait: c.Wait,
		Sender: func(pipeline.Effect) pipeline.EffectSender { return c.Payouts },
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
			d.held(seller, cur, h)
			if err := c.Store.PayoutFailed(ctx, run, seller, cur, c.Channels, e, h.Reason); err != nil {
				return err
			}
			return recordAdopted(ctx, c.Final, c.Answers, e)
		},
		Error: func(ctx context.Context, e pipeline.Effect, err error) error {
			if pipeline.SubjectOnly(err) {
				// Infinia refuses to tell us about this one payout: it stays as
				// it is (never sent again blindly), for a person; the others go on.
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
	if err != nil {
		return err
	}
	return pipeline.StillProcessing("revenue shares", "Infinia", c.Wait, res.Pending)
}
