package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// dryRun computes the plan of a date straight from the platform and prints
// it with what the ledger already holds. It writes nothing and sends nothing,
// and takes no lock.
func (cfg *config) dryRun(c *cli.Context, o *runOptions) error {
	ctx := c.Context
	db, err := openDB(ctx, o.sourceURL)
	if err != nil {
		return err
	}
	defer db.Close()
	src := cfg.extractSource(db, pipeline.SortedSourceQuery(o.query), o.queryName, true, false)
	sellers := sellerSource(db, o.sellersQ, o.sellersName, cfg.logger())
	known := map[string]*pipeline.Seller{} // nil: looked up, not found
	// Sellers sharing an account where an account is one seller's are
	// marked as the second is met: the first's orders before it are
	// planned as items, which a real run rejects (it sees every seller of
	// the run at once); the plan says so.
	owners, shared := channelSpecs().NewAccountOwners(), []string{}
	// A seller id the sellers query refuses (extract.IDsRefused: a cast
	// of the ids to numbers) is given no seller, its orders rejected, as
	// a run's lookup does while the query takes other ids; the dry run,
	// which looks up one id at a time, stopped there (exit 2). Only a
	// query that takes no id at all is the query's fault (refused).
	var refused error
	took := false
	lookup := func(id string) (pipeline.Seller, bool, error) {
		if s, ok := known[id]; ok {
			if s == nil {
				return pipeline.Seller{}, false, nil
			}
			return *s, true, nil
		}
		known[id] = nil
		err := sellers.Sellers(ctx, []string{id}, func(s pipeline.Seller) error {
			known[id] = &s
			return nil
		})
		if extract.IDsRefused(err) {
			cfg.logger().Warn("the sellers query refused a seller id: its orders are rejected as of a seller the platform does not give", "seller", id, "error", err.Error())
			refused = cmp.Or(refused, err)
			return pipeline.Seller{}, false, nil
		}
		took = took || err == nil
		if err != nil || known[id] == nil {
			return pipeline.Seller{}, false, err
		}
		if provider, other := owners.See(*known[id]); other != "" {
			for _, pair := range [][2]string{{id, other}, {other, id}} {
				s := known[pair[0]]
				if s.SharedWith == nil {
					s.SharedWith = map[string][]string{}
				}
				s.SharedWith[provider] = append(s.SharedWith[provider], pair[1])
			}
			shared = append(shared, errSharedAccount{provider, known[id].Account(provider), other, id}.Error())
		}
		return *known[id], true, nil
	}
	var plan pipeline.Plan
	err = pipeline.Settle(func(fn func(pipeline.SourceRow) error) error {
		return src.Orders(ctx, o.window, func(r pipeline.SourceRow) error {
			if !o.key.Shard.OwnsRow(r.SellerID, r.OrderNo) {
				return nil
			}
			return fn(r)
		})
	}, o.classify(lookup), &plan)
	if err == nil && refused != nil && !took {
		err = refused // the query took no id: it is what to fix, as for a run
	}
	if err != nil {
		return err
	}
	w := cfg.stdout
	fmt.Fprintf(w, "dry run %s: nothing is written or sent\n", o.key)
	fmt.Fprintf(w, "would record %d items:\n", plan.Items)
	printTotals(w, plan.Totals())
	printUnconfigured(w, plan.Totals(), o.configured(), o.skip)
	printNotDistributed(w, plan.Totals(), o.wechat)
	printPastMemory(w, o, cfg.clock())
	printRejects(w, groupReasons(plan.Rejects), 20)
	printReasons(w, "held for their sellers' accounts: %d orders; a real run pays nothing on them and ends with exit 4 until the platform's sellers give the accounts:\n",
		groupReasons(plan.Holds), 20)
	if rows, rejected := plan.Items+int64(len(plan.Rejects)), int64(len(plan.Rejects)); rows > 0 && float64(rejected) > o.maxRejectRt*float64(rows) {
		// What the run's reject gate does with these rows (rejectGate):
		// the dry run said nothing of it, exit 0 with every row rejected.
		fmt.Fprintf(w, "a real run stops before anything is sent, exit 3: %d of %d rows rejected, more than %.2f%% (--max-reject-ratio)\n",
			rejected, rows, 100*o.maxRejectRt)
	}
	for _, s := range shared {
		fmt.Fprintf(w, "%s: a real run holds all of them; the first's orders planned before the second's were met are not counted as held above\n", s)
	}
	var late, lateBad, lateOutside int
	var outsideFirst string
	err = (&extract.LateRefunds{DB: db, Query: o.lateQ, Name: o.lateName}).LateRefunds(ctx, o.window, func(row pipeline.LateRefundRow) error {
		r := pipeline.ReadLateRefund(row, 0)
		if !o.key.Shard.Owns(r.SellerID) {
			return nil
		}
		if r.State == pipeline.LateRefundPending && !o.window.Contains(r.CreatedAt) {
			if lateOutside++; lateOutside == 1 {
				outsideFirst = fmt.Sprintf("late refund %s of order %s: %s", r.RefundNo, r.OrderNo, pipeline.OutsideWindowReason(r.CreatedAt, o.window))
			}
			return nil
		}
		if late++; r.State == pipeline.LateRefundRejected {
			lateBad++
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "late refunds in the window: %d (%d that cannot be right)\n", late, lateBad)
	if lateOutside > 0 {
		fmt.Fprintf(w, "late refunds outside the window: %d, never taken back (a real run ends with exit 4); the first: %s\n", lateOutside, outsideFirst)
	}
	l, err := cfg.openLedger(ctx, c, false)
	if pipeline.KindOf(err) == pipeline.KindUsage {
		// The ledger's configuration (its schema's name, say): a real run
		// is refused, exit 2, and so is the dry run that checks it (it was
		// "not reachable", exit 0: found by an operator's review).
		return err
	}
	if err != nil {
		fmt.Fprintf(w, "ledger: not reachable (%v)\n", err)
		return nil
	}
	defer l.Close()
	migrated, err := l.Migrated(ctx)
	if err != nil {
		return err
	}
	if migrated {
		// A ledger a newer settle migrated: a real run is refused (exit 2)
		// before it reads a day; the dry run says so rather than what
		// the run would resume (found by an operator's walkthrough).
		if err := l.CheckVersion(ctx); pipeline.KindOf(err) == pipeline.KindUsage {
			fmt.Fprintf(w, "ledger: a real run is refused: %v\n", err)
			return nil
		} else if err != nil {
			return err
		}
	}
	var runs []*pipeline.Run
	if migrated {
		if runs, err = l.RunsOn(ctx, o.key.Date); err != nil {
			return err
		}
	}
	keys := pipeline.ShardsToRun(runs, o.key)
	switch {
	case !migrated:
		fmt.Fprintln(w, "ledger: no schema yet (nothing settled)")
	case len(runs) == 0:
		fmt.Fprintln(w, "ledger: this date has not been run")
	case len(keys) == 1 && pipeline.OtherSharding(runs, o.key) != nil:
		fmt.Fprintf(w, "ledger: a real run is refused: %v\n", pipeline.OtherSharding(runs, o.key))
	default:
		if len(keys) > 1 {
			fmt.Fprintf(w, "ledger: the date was run in shards: a real run settles %s one after another (the plan above is the whole day's)\n", shardList(keys))
		}
		for _, k := range keys {
			i := slices.IndexFunc(runs, func(r *pipeline.Run) bool { return r.Key == k })
			if i < 0 {
				fmt.Fprintf(w, "ledger: run %s has not started\n", k)
				continue
			}
			run := runs[i]
			fmt.Fprintf(w, "ledger: run %s is %s, stages done: %v; a real run resumes from there\n", run.Key, run.State, run.StagesDone)
			// What a real run does first: ask about the requests the run
			// sent and never recorded an answer to (killed, or its wait
			// over). Said by status only as a list of effects worth a
			// look; "what will the next run do?" had no answer here.
			inFlight, err := l.InFlightByKind(ctx, run.ID)
			if err != nil {
				return err
			}
			if len(inFlight) > 0 {
				var total int64
				var kinds []string
				for kind, n := range inFlight {
					total += n
					kinds = append(kinds, fmt.Sprintf("%s %d", kind, n))
				}
				slices.Sort(kinds)
				fmt.Fprintf(w, "ledger: run %s has %d requests sent and never answered (%s): a real run asks their provider about each by its key, and sends none again blind (settle status lists them, sent or unknown)\n",
					run.Key, total, strings.Join(kinds, ", "))
			}
			if note, ok := strings.CutPrefix(run.LastError, pipeline.NeedsPersonNote); ok {
				// What its last run left for a person (held payments, by
				// order, say): a real run looks at them again, as settle
				// status names them.
				fmt.Fprintf(controlSafe(w), "ledger: run %s ended needing a person: %s\n", run.Key, note)
			}
			if run.Done(pipeline.StageTransform) && run.RulesHash != o.rulesHash {
				// The plan above is split under the rules given; a real run
				// pays the splits recorded under the others.
				fmt.Fprintf(w, "ledger: run %s split its day under other rules than these (rules hash %.12s, these %.12s): its splits stand, and a real run pays them, not the plan's\n",
					run.Key, run.RulesHash, o.rulesHash)
			}
		}
	}
	if migrated {
		// A real run is refused (exit 2) a date beside one run in another
		// zone whose window its own does not meet, or a date resumed in
		// other hours than it read its day in: the dry run planned the
		// day in --tz all the same, and said nothing of it (found by an
		// operator's trial).
		sourceDB := cfg.sourceDB(ctx, db)
		for _, k := range keys {
			var run *pipeline.Run
			if i := slices.IndexFunc(runs, func(r *pipeline.Run) bool { return r.Key == k }); i >= 0 {
				run = runs[i]
			}
			if _, err := checkZone(ctx, l, o, run); pipeline.KindOf(err) == pipeline.KindUsage {
				fmt.Fprintf(w, "ledger: a real run is refused: %v\n", err)
				break
			} else if err != nil {
				return err
			}
			// So is one from other provider accounts than the date, or
			// the dates before it, sent from, or reading another platform
			// database than they read (ledger.OpenRun).
			if err := l.CheckOpen(ctx, k, pipeline.RunParams{Accounts: o.accounts(), NewAccounts: o.newAccount,
				SourceDB: sourceDB, NewSource: o.newSource}); pipeline.KindOf(err) == pipeline.KindUsage {
				fmt.Fprintf(w, "ledger: a real run is refused: %v\n", err)
				break
			} else if err != nil {
				return err
			}
		}
		// A real run reads, with the day's sellers, those of its shard
		// with a balance carried from before (pipeline.CarriedSellers),
		// and holds the orders of a seller of the day whose account one
		// of them has where an account is one seller's: the plan above
		// did not (found by a review of b83e93d).
		carried, err := l.CarriedSellers(ctx, o.key.Date)
		if err != nil {
			return err
		}
		var more []string
		for _, id := range carried {
			if _, seen := known[id]; !seen && o.key.Shard.Owns(id) {
				more = append(more, id)
			}
		}
		if err := sellers.Sellers(ctx, more, func(s pipeline.Seller) error {
			if provider, other := owners.See(s); other != "" {
				fmt.Fprintf(w, "%s: seller %s has no order on the date, a balance carried from before: a real run holds the orders paid to it, not counted as held above, and carries the balance\n",
					errSharedAccount{provider, s.Account(provider), other, s.ID}.Error(), s.ID)
			}
			return nil
		}); err != nil {
			return err
		}
		carries, err := l.OpenCarries(ctx, o.key.Date)
		if err != nil {
			return err
		}
		n := 0
		for _, cr := range carries {
			if o.key.Shard.Owns(cr.SellerID) {
				n++
			}
		}
		fmt.Fprintf(w, "ledger: %d open carried balances of this shard's sellers would be netted where they can be (settle status lists them)\n", n)
	}
	fmt.Fprintln(w, "would send: what the providers allow once asked (bindings, balances, available shares, receivers); a dry run asks them nothing")
	return nil
}

func sampleOf(rejects []pipeline.Reject, reason string) string {
	for _, r := range rejects {
		if r.Reason == reason {
			if r.OrderNo != "" {
				return r.OrderNo
			}
			return fmt.Sprintf("(row %d)", r.Seq)
		}
	}
	return ""
}

// printUnconfigured says which channels of the plan have no provider
// configured: a real run would leave their orders unpaid and end with exit
// 4, unless they are skipped.
func printUnconfigured(w io.Writer, totals []pipeline.Totals, configured, skip map[pipeline.Channel]bool) {
	orders := map[pipeline.Channel]int64{}
	for _, t := range totals {
		orders[t.Channel] += t.Orders
	}
	for _, spec := range channelSpecs() {
		ch := spec.Channel
		switch {
		case orders[ch] == 0 || configured[ch]:
		case skip[ch]:
			fmt.Fprintf(w, "channel %s: %d orders left unpaid on purpose (--%s)\n", ch, orders[ch], flagSkipChannel)
		default:
			fmt.Fprintf(w, "channel %s: %d orders and no provider configured (%s): a real run ends with exit 4 unless --%s %s\n",
				ch, orders[ch], channelFlag(ch), flagSkipChannel, ch)
		}
	}
}

// printNotDistributed says how many of the plan's WeChat Pay orders are in
// a currency WeChat Pay does not distribute (--wechat-currencies): a real
// run records them and holds each for a person, nothing sent (exit 4).
// Nothing when WeChat Pay is not configured (printUnconfigured says so).
func printNotDistributed(w io.Writer, totals []pipeline.Totals, wx *weChatSetup) {
	if wx == nil {
		return
	}
	names := make([]string, len(wx.currencies))
	for i, cur := range wx.currencies {
		names[i] = string(cur)
	}
	for _, t := range totals {
		if t.Channel == wechatpay.Channel && !wx.distributes(t.Currency) {
			fmt.Fprintf(w, "channel %s: %d orders in %s, which WeChat Pay does not distribute (--%s %s): a real run holds each for a person, nothing sent for it, exit 4; settle them by hand at WeChat Pay, then settle resolve --order\n",
				t.Channel, t.Orders, t.Currency, flagWXCurrencies, strings.Join(names, ","))
		}
	}
}

// printPastMemory says, for each configured provider whose status query
// is taken to remember less than the time since the date ended
// (pipeline.DatePastMemory, as of now), that a real run sends none of the
// date's new requests to it, holding those it has (exit 4), unless
// --send-past-memory: the dry run said "would send", and the real run
// held them. Nothing with the flag.
func printPastMemory(w io.Writer, o *runOptions, now time.Time) {
	if o.sendPastMemory {
		return
	}
	type provider struct {
		name, what string
		memory     time.Duration
	}
	var ps []provider
	if o.infinia != nil {
		ps = append(ps, provider{"Infinia", "trade files or revenue shares", cmp.Or(o.infinia.memory, infiniapay.DefaultMemory)})
	}
	if o.wechat != nil {
		ps = append(ps, provider{"WeChat Pay", "distributions or unfreezes", cmp.Or(o.wechat.memory, wechatpay.DefaultMemory)})
	}
	for _, p := range ps {
		if err := pipeline.DatePastMemory(o.key.Date, o.tz, now, p.memory, p.name, p.what); err != nil {
			fmt.Fprintf(w, "a real run sends no new %s request of %s: if the date has any left to send, it holds them and ends with exit 4 (a request the ledger holds sent is still asked about): %v. %s\n", p.name, o.key.Date, err, pipeline.WhyOf(err))
		}
	}
}

// groupReasons groups rows by reason, in the order the reasons come, each
// with its count and an example.
func groupReasons(rows []pipeline.Reject) []ledger.RejectReason {
	reasons := map[string]int64{}
	var order []string
	for _, r := range rows {
		if reasons[r.Reason] == 0 {
			order = append(order, r.Reason)
		}
		reasons[r.Reason]++
	}
	var grouped []ledger.RejectReason
	for _, reason := range order {
		grouped = append(grouped, ledger.RejectReason{Reason: reason, Count: reasons[reason], Sample: sampleOf(rows, reason)})
	}
	return grouped
}
