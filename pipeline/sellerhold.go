package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// SellerHold is what a run holds for one seller's account at the provider
// that pays one channel: its items held with SellerHoldPrefix.
type SellerHold struct {
	SellerID string
	Channel  Channel
	Currency Currency
	Orders   int64
	Share    int64  // their seller shares, minor units of Currency
	Reason   string // the hold's reason after SellerHoldPrefix (one of them, where they differ)
}

// SellerHoldMove is what a run's seller check does with one seller's held
// items of a channel: State is the state they go to (the channel's first,
// released; ItemHeld, still held) and Reason their reason ("" released).
type SellerHoldMove struct {
	SellerID string
	Channel  Channel
	State    ItemState
	Reason   string
}

// SellerAccount is a seller's account at a provider, as the platform's
// sellers give it now.
type SellerAccount struct {
	SellerID string
	Provider string // the account's key in Seller.Accounts
	Account  string
}

// SellerHoldStore is what SellerHoldStage needs of the ledger.
type SellerHoldStore interface {
	// SellerHolds returns the run's items held for their sellers'
	// accounts, by seller, channel and currency.
	SellerHolds(ctx context.Context, runID int64) ([]SellerHold, error)
	// RunSellers returns the sellers recorded with the run's snapshot.
	RunSellers(ctx context.Context, runID int64) (map[string]Seller, error)
	// OtherShardSellers returns the sellers the date's other shards of
	// key's sharding recorded.
	OtherShardSellers(ctx context.Context, key RunKey) (map[string]Seller, error)
	// HoldSellerItems holds the run's items of each move's seller and
	// channel that nothing was built or sent for yet (recorded and in no
	// file, or unverified), with the move's reason (State ItemHeld), in
	// one transaction. It returns how many it held.
	HoldSellerItems(ctx context.Context, run *Run, moves []SellerHoldMove) (int64, error)
	// MoveSellerHolds records, in one transaction, the accounts given
	// since in the run's sellers and each move of the run's held items.
	// It returns how many items were released.
	MoveSellerHolds(ctx context.Context, run *Run, accounts []SellerAccount, moves []SellerHoldMove) (int64, error)
}

// SellerCheck says why an order of a channel cannot be paid to its seller's
// account (transform.CheckSeller), or "" when it can.
type SellerCheck func(o Order, s Seller, known bool, channels Channels) string

// SellerHoldStage is the seller check a run makes at the start of its
// upload stage, on every invocation, before anything is built or sent: it
// reads again, with the platform's sellers query, the sellers whose items
// the run holds for their accounts (transform held them: none at the
// provider that pays them, one it cannot use, or one another seller has
// too), and releases the items of each whose account the check now finds
// usable - into the state their channel starts in, so that the stages
// after it settle them as a first run would - recording the account in
// the run's sellers. Only the account at the provider that pays the held
// items is taken: the seller's other accounts stay as the run recorded
// them, as a run pays to the sellers it read with its snapshot.
//
// A shard's run first holds the items, not yet in a file, of its sellers
// sharing a one-seller account with a seller the date's other shards
// recorded since its split (holdSharedWithOtherShards).
//
// Nothing is paid on a held item. The items still held are what needs a
// person (the platform must give the account), one subject a seller:
// the stage stays not done, the run ends with exit 4 and every run of the
// date looks again. A run without such items reads nothing.
func SellerHoldStage(store SellerHoldStore, src SellerSource, channels Channels, check SellerCheck) StageFunc {
	return func(ctx context.Context, run *Run) (string, error) {
		if err := holdSharedWithOtherShards(ctx, store, channels, check, run); err != nil {
			return "", err
		}
		holds, err := store.SellerHolds(ctx, run.ID)
		if err != nil || len(holds) == 0 {
			return "", err
		}
		accounts, reasons, err := judgeHolds(ctx, store, src, channels, check, run, holds)
		if err != nil {
			return "", err
		}
		var moves []SellerHoldMove
		type held struct {
			orders int64
			shares map[Currency]int64
			reason string
		}
		still := map[string]*held{}
		var order []string
		released := map[string]bool{}
		for i, h := range holds {
			reason := reasons[i]
			m := SellerHoldMove{SellerID: h.SellerID, Channel: h.Channel, State: ItemHeld, Reason: SellerHoldPrefix + reason}
			if reason == "" {
				spec, _ := channels.Spec(h.Channel)
				m.State, m.Reason = ItemRecorded, ""
				if spec.Unverified {
					m.State = ItemUnverified
				}
				released[h.SellerID] = true
			} else {
				x := still[h.SellerID]
				if x == nil {
					x = &held{reason: reason, shares: map[Currency]int64{}}
					still[h.SellerID] = x
					order = append(order, h.SellerID)
				}
				x.orders += h.Orders
				x.shares[h.Currency] += h.Share
			}
			if len(moves) == 0 || moves[len(moves)-1].SellerID != m.SellerID || moves[len(moves)-1].Channel != m.Channel {
				moves = append(moves, m) // holds come by seller and channel
			}
		}
		n, err := store.MoveSellerHolds(ctx, run, accounts, moves)
		if err != nil {
			return "", err
		}
		var problems Problems
		var orders int64
		for _, id := range order {
			x := still[id]
			orders += x.orders
			var shares []string
			for _, cur := range slices.Sorted(maps.Keys(x.shares)) {
				shares = append(shares, Money{x.shares[cur], cur}.String())
			}
			problems.Add(fmt.Sprintf("seller %s: %d orders held (seller share %s): %s", id, x.orders, strings.Join(shares, ", "), x.reason))
		}
		var parts []string
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d orders of %d sellers released (their accounts given since)", n, len(released)))
		}
		if len(order) > 0 {
			parts = append(parts, fmt.Sprintf("%d orders of %d sellers held for their accounts", orders, len(order)))
			problems.Summary = fmt.Sprintf("%d orders of %d sellers held for their accounts, nothing paid on them: once the platform's sellers give each a usable account, run the date again", orders, len(order))
		}
		summary := "sellers' accounts: " + strings.Join(parts, ", ")
		return summary, problems.NeedsPerson()
	}
}

// holdSharedWithOtherShards holds, in a shard's run, the items not yet
// built into a file or sent of each of its sellers whose account, where an
// account is one seller's, a seller the date's other shards recorded has
// too (as recorded), with the reason the split gives such a seller. The
// split compared the run's sellers with those the other shards had
// recorded when it began: the pods of an Indexed Job read the day at the
// same moment, none had, and two sellers of one such account in two
// shards were both paid to it (found by a review). Each shard records its
// sellers before its upload stage asks this, so of two shards the later
// to ask sees the other's; the check after it (judgeHolds) reads the
// sellers again, and releases what the platform corrected since.
func holdSharedWithOtherShards(ctx context.Context, store SellerHoldStore, channels Channels, check SellerCheck, run *Run) error {
	if run.Key.Shard.Count <= 1 {
		return nil
	}
	others, err := store.OtherShardSellers(ctx, run.Key)
	if err != nil || len(others) == 0 {
		return err
	}
	mine, err := store.RunSellers(ctx, run.ID)
	if err != nil {
		return err
	}
	all := make(map[string]Seller, len(mine)+len(others))
	for id, s := range others {
		s.SharedWith = nil
		all[id] = s
	}
	for id, s := range mine {
		s.SharedWith = nil
		all[id] = s
	}
	channels.MarkShared(all)
	var moves []SellerHoldMove
	for _, id := range slices.Sorted(maps.Keys(mine)) {
		s := all[id]
		for _, spec := range channels {
			if !spec.OneSellerAnAccount || spec.Account == "" ||
				!slices.ContainsFunc(s.SharedWith[spec.Account], func(o string) bool { _, own := mine[o]; return !own }) {
				continue
			}
			if reason := check(Order{SellerID: id, Channel: spec.Channel}, s, true, channels); reason != "" {
				moves = append(moves, SellerHoldMove{SellerID: id, Channel: spec.Channel, State: ItemHeld, Reason: SellerHoldPrefix + reason})
			}
		}
	}
	if len(moves) == 0 {
		return nil
	}
	_, err = store.HoldSellerItems(ctx, run, moves)
	return err
}

// SellerHoldsPayable says how many of the run's orders held for their
// sellers' accounts the seller check would release now, and whose, without
// moving or recording anything: what a nightly run asks of an earlier
// date's run left needing a person, which only a run of that date pays.
func SellerHoldsPayable(ctx context.Context, store SellerHoldStore, src SellerSource, channels Channels, check SellerCheck, run *Run) (int64, []string, error) {
	holds, err := store.SellerHolds(ctx, run.ID)
	if err != nil || len(holds) == 0 {
		return 0, nil, err
	}
	_, reasons, err := judgeHolds(ctx, store, src, channels, check, run, holds)
	if err != nil {
		return 0, nil, err
	}
	var orders int64
	var sellers []string
	for i, h := range holds {
		if reasons[i] == "" {
			orders += h.Orders
			if !slices.Contains(sellers, h.SellerID) {
				sellers = append(sellers, h.SellerID)
			}
		}
	}
	return orders, sellers, nil
}

// judgeHolds reads again the sellers of holds (the run's, SellerHolds)
// and says, for each hold, why its orders stay held ("" when they are
// released now), with the held sellers' accounts the platform gives now
// that differ from the run's record (to be recorded).
func judgeHolds(ctx context.Context, store SellerHoldStore, src SellerSource, channels Channels, check SellerCheck, run *Run, holds []SellerHold) (
	[]SellerAccount, []string, error) {
	ids := map[string]bool{}
	for _, h := range holds {
		ids[h.SellerID] = true
	}
	now := map[string]Seller{}
	if err := src.Sellers(ctx, slices.Sorted(maps.Keys(ids)), func(s Seller) error {
		now[s.ID] = s
		return nil
	}); err != nil {
		return nil, nil, sellersNotRead(ctx, "the sellers of the orders held for their accounts", err)
	}
	mine, err := store.RunSellers(ctx, run.ID)
	if err != nil {
		return nil, nil, err
	}
	all := mine
	if run.Key.Shard.Count > 1 {
		others, err := store.OtherShardSellers(ctx, run.Key)
		if err != nil {
			return nil, nil, err
		}
		for id, s := range others {
			if _, ok := all[id]; !ok {
				all[id] = s
			}
		}
	}
	// The held sellers' accounts at the providers of their holds, as
	// the platform gives them now.
	var accounts []SellerAccount
	given := map[[2]string]bool{}
	shared := map[[2]string]bool{} // provider, account: a held seller's, as recorded or given now
	for _, h := range holds {
		spec, ok := channels.Spec(h.Channel)
		fresh, read := now[h.SellerID]
		if !ok || spec.Account == "" || !read || given[[2]string{h.SellerID, spec.Account}] {
			continue
		}
		given[[2]string{h.SellerID, spec.Account}] = true
		s := all[h.SellerID]
		acc := fresh.Account(spec.Account)
		if spec.OneSellerAnAccount {
			shared[[2]string{spec.Account, acc}] = acc != ""
			shared[[2]string{spec.Account, s.Account(spec.Account)}] = s.Account(spec.Account) != ""
		}
		if acc != s.Account(spec.Account) {
			accounts = append(accounts, SellerAccount{h.SellerID, spec.Account, acc})
			all[h.SellerID] = withAccount(s, spec.Account, acc)
		}
	}
	// The other sellers of the date that the run's record gives one of
	// those accounts are read again too, and their account there now
	// counts (not recorded: their orders are not this stage's to
	// move). Compared as recorded, a seller that shared its account
	// with one whose orders a person rejected since, or with one of no
	// held orders, stayed held on every run of the date, whatever the
	// platform corrected (found by a review). One the platform gives
	// no row for keeps its recorded account.
	var partners []string
	for id, s := range all {
		if ids[id] {
			continue
		}
		for k, ok := range shared {
			if ok && s.Account(k[0]) == k[1] {
				partners = append(partners, id)
				break
			}
		}
	}
	if len(partners) > 0 {
		slices.Sort(partners)
		if err := src.Sellers(ctx, partners, func(p Seller) error {
			s, ok := all[p.ID]
			if !ok {
				return nil
			}
			for k, ok := range shared {
				if ok && s.Account(k[0]) == k[1] {
					s = withAccount(s, k[0], p.Account(k[0]))
				}
			}
			all[p.ID] = s
			return nil
		}); err != nil {
			return nil, nil, sellersNotRead(ctx, "the sellers sharing an account with those whose orders are held", err)
		}
	}
	for id, s := range all {
		s.SharedWith = nil
		all[id] = s
	}
	channels.MarkShared(all)
	reasons := make([]string, len(holds))
	for i, h := range holds {
		var reason string
		if _, read := now[h.SellerID]; !read {
			reason = fmt.Sprintf("seller %s is not in the platform's sellers now (its sellers query gives no row for it, or rows that disagree)", h.SellerID)
		} else {
			s, known := all[h.SellerID]
			reason = check(Order{SellerID: h.SellerID, Channel: h.Channel}, s, known, channels)
		}
		reasons[i] = reason
	}
	return accounts, reasons, nil
}

// withAccount is s with its account at provider acc ("" none).
func withAccount(s Seller, provider, acc string) Seller {
	s.Accounts = maps.Clone(s.Accounts)
	if s.Accounts == nil {
		s.Accounts = map[string]string{}
	}
	s.Accounts[provider] = acc
	return s
}

// sellersNotRead is the seller check's error when the platform's sellers
// could not be read again (what). A failure a retry may get past (the
// platform's database down, a timeout) is work left for the next run
// (ErrStillProcessing, exit 1): the held orders stay held, and the
// providers' uploads of every other order go on, as when a provider does
// not answer. Before, it stopped the upload stage for every seller of
// the date while one was held (found by a review).
func sellersNotRead(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil || KindOf(err) != KindFailed || errors.Is(err, ErrStillProcessing) {
		return fmt.Errorf("read again %s: %w", what, err)
	}
	return E(KindFailed, "", fmt.Errorf("%w: %s could not be read again, so their orders held for their accounts wait for the next run of this date (the other orders went on): %w",
		ErrStillProcessing, what, err))
}
