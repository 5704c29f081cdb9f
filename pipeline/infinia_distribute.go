package pipeline

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// DistributeInfiniaStage pays each seller's share of the run's accepted
// trade files by Infinia revenue sharing: one request per seller and
// currency, with a deterministic requestNo, intent first, polled to a final
// state. Before new money moves it checks, in this order: the seller's
// binding is ACTIVE (refreshed from Infinia), the platform's balance covers
// every new payout in the currency (else none of them is sent), and Infinia's
// available revenue share for the seller covers ours. What fails a check is
// held, reported, and paid by a later re-run once the cause is gone; a payout
// already planned is always resolved, never re-checked or re-planned.
func DistributeInfiniaStage(c InfiniaConfig) StageFunc {
	c.defaults()
	return func(ctx context.Context, run *Run) (string, error) {
		d := &distribution{c: &c, run: run}
		if err := d.plan(ctx); err != nil {
			return "", err
		}
		if err := d.pay(ctx); err != nil {
			return "", err
		}
		summary := fmt.Sprintf("%d revenue shares paid (%d sent now), %d held", d.paid, d.sent, d.held)
		return summary, needsPerson(d.problems)
	}
}

type distribution struct {
	c    *InfiniaConfig
	run  *Run
	todo []Effect

	mu               sync.Mutex
	paid, sent, held int
	problems         []string
}

func (d *distribution) problem(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.problems = append(d.problems, fmt.Sprintf(format, args...))
}

// hold leaves a payable's items uploaded (so a re-run pays them) with the
// reason, and counts it.
func (d *distribution) hold(ctx context.Context, p Payable, reason string) error {
	d.mu.Lock()
	d.held++
	d.mu.Unlock()
	_, err := d.c.Store.SetItemsState(ctx, d.run.ID, p.SellerID, p.Currency, InfiniaChannels, "uploaded", "uploaded", "held: "+reason, "", "")
	return err
}

// plan decides, for every payable, whether it is resolved (already planned),
// held, or planned now; it fills d.todo.
func (d *distribution) plan(ctx context.Context) error {
	c, run := d.c, d.run
	payables, err := c.Store.Payables(ctx, run.ID, "uploaded", InfiniaChannels)
	if err != nil {
		return err
	}
	sellers, err := c.Store.RunSellers(ctx, run.ID)
	if err != nil {
		return err
	}
	fresh := map[Currency][]Payable{} // payables with no payout planned yet
	var mu sync.Mutex
	err = forEach(ctx, c.Parallel, payables, func(p Payable) error {
		subject := RevenueShareSubject(run.Key.Date, p.SellerID, p.Currency)
		e, ok, err := c.Store.LatestEffect(ctx, KindRevenueShare, subject)
		if err != nil {
			return err
		}
		switch {
		case ok && e.Amount != p.Amount && e.State == EffectSucceeded:
			// Never mark items paid by a payout of another amount.
			d.problem("%s: paid %s earlier, but %s is now owed: a person must decide", subject,
				Money{e.Amount, e.Currency}, Money{p.Amount, p.Currency})
			return nil
		case ok && e.State != EffectFailed:
			mu.Lock()
			d.todo = append(d.todo, e) // resolve it, whatever it is
			mu.Unlock()
			return nil
		case ok && e.Amount != p.Amount:
			d.problem("%s: attempt %d failed for %s, now %s is owed: a person must decide", subject, e.Attempt,
				Money{e.Amount, e.Currency}, Money{p.Amount, p.Currency})
			return nil
		case ok && e.Attempt >= c.MaxAttempts:
			d.problem("%s: %d attempts failed, last: %s", subject, e.Attempt, e.LastError)
			return nil
		}
		if p.Amount == 0 { // everything refunded or taken as commission: settled, nothing to send
			_, err := c.Store.SetItemsState(ctx, run.ID, p.SellerID, p.Currency, InfiniaChannels, "uploaded", "paid", "seller share is 0: no payout", "", "")
			return err
		}
		s := sellers[p.SellerID]
		status, err := c.API.BindingStatus(ctx, QueryRequestNo("ABQ"), s.InfiniaID)
		if err != nil {
			return fmt.Errorf("binding of %s: %w", p.SellerID, err)
		}
		if err := c.Store.SetBinding(ctx, Binding{SellerID: p.SellerID, InfiniaID: s.InfiniaID, Status: status, Source: "query"}); err != nil {
			return err
		}
		if status != BindingActive {
			return d.hold(ctx, p, "Infinia binding is "+status)
		}
		mu.Lock()
		fresh[p.Currency] = append(fresh[p.Currency], p)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	for _, ps := range fresh {
		sort.Slice(ps, func(i, j int) bool { return ps[i].SellerID < ps[j].SellerID })
	}
	currencies := make([]Currency, 0, len(fresh))
	for cur := range fresh {
		currencies = append(currencies, cur)
	}
	sort.Slice(currencies, func(i, j int) bool { return currencies[i] < currencies[j] })
	for _, cur := range currencies {
		if err := d.planCurrency(ctx, cur, fresh[cur], sellers); err != nil {
			return err
		}
	}
	return nil
}

// planCurrency checks the platform balance for a currency's new payouts and
// each seller's available share, and plans those that pass.
func (d *distribution) planCurrency(ctx context.Context, cur Currency, ps []Payable, sellers map[string]Seller) error {
	c, run := d.c, d.run
	var need int64
	for _, p := range ps {
		var err error
		if need, err = Add(need, p.Amount); err != nil {
			return err
		}
	}
	balance, err := c.API.Balance(ctx, QueryRequestNo("BQ"), cur)
	if err != nil {
		return fmt.Errorf("platform balance in %s: %w", cur, err)
	}
	if balance < need {
		d.problem("platform balance %s is short of the %s owed to %d sellers: nothing sent in %s",
			Money{balance, cur}, Money{need, cur}, len(ps), cur)
		for _, p := range ps {
			if err := d.hold(ctx, p, fmt.Sprintf("platform balance %s short of %s", Money{balance, cur}, Money{need, cur})); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range ps {
		s := sellers[p.SellerID]
		avail, err := c.API.AvailableShare(ctx, QueryRequestNo("RSA"), s.InfiniaID, cur)
		if err != nil {
			return fmt.Errorf("available share of %s: %w", p.SellerID, err)
		}
		if avail < p.Amount {
			reason := fmt.Sprintf("Infinia shows %s available, we owe %s", Money{avail, cur}, Money{p.Amount, cur})
			d.problem("seller %s: %s", p.SellerID, reason)
			if err := d.hold(ctx, p, reason); err != nil {
				return err
			}
			continue
		}
		subject := RevenueShareSubject(run.Key.Date, p.SellerID, cur)
		attempt := 1
		if prev, ok, err := c.Store.LatestEffect(ctx, KindRevenueShare, subject); err != nil {
			return err
		} else if ok {
			next, err := NextAttempt(prev, c.MaxAttempts, func(a int) string { return RevenueShareRequestNo(run.Key.Date, p.SellerID, cur, a) })
			if err != nil {
				d.problem("%v", err)
				continue
			}
			attempt = next.Attempt
		}
		e, err := c.Store.PlanEffect(ctx, Effect{RunID: run.ID, Kind: KindRevenueShare, Subject: subject, Attempt: attempt,
			Key: RevenueShareRequestNo(run.Key.Date, p.SellerID, cur, attempt), Currency: cur, Amount: p.Amount})
		if err != nil {
			return err
		}
		d.todo = append(d.todo, e)
	}
	return nil
}

// pay drives every planned payout to a final state and applies it to the
// items.
func (d *distribution) pay(ctx context.Context) error {
	c, run := d.c, d.run
	progress := ProgressFrom(ctx)
	progress.SetTotal(int64(len(d.todo)))
	return forEach(ctx, c.Parallel, d.todo, func(e Effect) error {
		defer progress.Add(1)
		before := e.Sends
		e, err := settleEffect(ctx, c.Store, c.Wait, c.Poll, c.Payouts, e)
		if err != nil {
			return fmt.Errorf("revenue share %s: %w", e.Key, err)
		}
		seller, cur := subjectSeller(e.Subject), e.Currency
		switch e.State {
		case EffectSucceeded:
			if _, err := c.Store.SetItemsState(ctx, run.ID, seller, cur, InfiniaChannels, "uploaded", "paid", "", e.Key, e.ProviderRef); err != nil {
				return err
			}
			d.mu.Lock()
			d.paid++
			if e.Sends > before {
				d.sent++
			}
			d.mu.Unlock()
		case EffectFailed:
			d.problem("revenue share %s to %s failed: %s", e.Key, seller, e.LastError)
			return d.hold(ctx, Payable{SellerID: seller, Currency: cur}, "revenue share "+e.Key+" failed: "+e.LastError)
		default:
			return fmt.Errorf("revenue share %s still %s after %s; run again to resume", e.Key, e.State, c.Wait)
		}
		return nil
	})
}
