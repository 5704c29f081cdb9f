package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

func statusCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show what the runs of a date did: stages, totals, paid/carried/held, side effects and their history, rejects",
		Flags: append(ledgerFlags(ledgerURLUsage), dateFlag("business date YYYY-MM-DD (required)"),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json (one JSON document of the same figures)"},
			&cli.BoolFlag{Name: "rules", Usage: "the rules file each run of the date split its items with, as it was read, instead (the rule an order names in orders.csv, rules.csv:3, is its line 3)"},
			&cli.StringFlag{Name: "order", Usage: "one order of the date, as orders.csv names it: everything the ledger knows of it instead - each row the date's runs read with its number (as read, or not kept) and the reject it became with the reason, its item (split, rule, state and reason), the payout that paid or carried it (its subject, key, state, amount and provider reference; the carried entry; an Infinia order's trade file with the status Infinia gave it), its late refunds and clawbacks, what the reconciliation last found of it, its payout or its file, what the looks at the date's window found of it since the date was read (written into it late, changed, or gone), and what a person resolved of it"},
			&cli.StringFlag{Name: "subject", Usage: "one side effect of the date, as payouts.csv names it, or the key of one of its attempts (payouts.csv's key, orders.csv's payout_key, a requestNo or out_order_no), or the key of a close of a seller's carried balance (settle sellers close: orders.csv's payout_key of its row): its whole history instead - the runs that recorded it (rules and configuration hashes), every attempt with its key, amount and every event, the orders it paid or carried (an upload: its file listed) with their split, rule and source row, the carried entries netted into it, an upload's trade file with the status Infinia gave it, what the reconciliation last found of it, and what a person resolved of it, by whom (a subject or key of another date: exit 2, naming the command for it)"}),
		Action: func(c *cli.Context) error {
			d, err := requiredDate(c)
			if err != nil {
				return err
			}
			format := c.String("output")
			if format != "text" && format != "json" {
				return pipeline.Errorf(pipeline.KindUsage, "--output", "%q: want text or json", format)
			}
			l, err := cfg.openLedger(c.Context, c, false)
			if err != nil {
				return err
			}
			defer l.Close()
			migrated, err := l.Migrated(c.Context)
			if err != nil {
				return err
			}
			if migrated {
				if err := l.CheckMigrated(c.Context); err != nil {
					return err
				}
			}
			given := 0
			for _, set := range []bool{c.Bool("rules"), c.String("subject") != "", c.IsSet("order")} {
				if set {
					given++
				}
			}
			if given > 1 {
				return pipeline.Errorf(pipeline.KindUsage, "status", "give one of --rules, --subject and --order, not more")
			}
			if c.Bool("rules") {
				var rs []ledger.RunRules
				if migrated {
					if rs, err = l.RulesFiles(c.Context, d); err != nil {
						return err
					}
				}
				var reprices []ledger.Reprice
				if len(rs) > 0 {
					if reprices, err = l.RepricesOf(c.Context, d, true); err != nil {
						return err
					}
				}
				if format == "json" {
					enc := json.NewEncoder(cfg.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(runRulesJSON(rs, reprices))
				}
				if len(rs) == 0 {
					fmt.Fprintf(cfg.stdout, "%s: no run recorded\n", d)
					return nil
				}
				printRulesFiles(controlSafe(cfg.stdout), d, rs)
				printRepricedRules(controlSafe(cfg.stdout), d, reprices)
				return nil
			}
			if order := c.String("order"); c.IsSet("order") {
				return showHistory(cfg, format, "--order", order, migrated, l, func() (*ledger.OrderHistory, error) { return l.OrderHistory(c.Context, d, order) }, printOrder)
			}
			if subject := c.String("subject"); subject != "" {
				return showHistory(cfg, format, "--subject", subject, migrated, l, func() (*ledger.SubjectHistory, error) { return l.SubjectHistory(c.Context, d, subject) }, printSubject)
			}
			var s *ledger.DateStatus
			if migrated {
				if s, err = l.DateStatus(c.Context, d); err != nil {
					return err
				}
			}
			if format == "json" {
				if s == nil {
					s = &ledger.DateStatus{Date: d.String(), Runs: []ledger.RunStatus{}}
				}
				enc := json.NewEncoder(cfg.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			switch {
			case !migrated:
				fmt.Fprintf(cfg.stdout, "%s: no run recorded (the ledger schema %s does not exist yet)\n", d, l.Schema())
			case len(s.Runs) == 0:
				fmt.Fprintf(cfg.stdout, "%s: no run recorded\n", d)
			default:
				printStatus(controlSafe(cfg.stdout), s)
			}
			return nil
		},
	}
}

// runRules is a run's rules file as status --rules -o json gives it: the
// list of the date's runs (ledger.RunRules), each with the rules files
// the date was repriced with since, oldest first (settle reprice: the
// last one's rules are the date's, whichever shard), as text lists them
// after the runs'. On each run, so that the list stays one of runs, as it
// was before the reprices; absent when the date was not repriced.
type runRules struct {
	ledger.RunRules
	Repriced []ledger.Reprice `json:"repriced,omitempty"`
}

func runRulesJSON(rs []ledger.RunRules, reprices []ledger.Reprice) []runRules {
	out := make([]runRules, len(rs))
	for i, r := range rs {
		out[i] = runRules{RunRules: r, Repriced: reprices}
	}
	return out
}

// printRulesFiles prints the rules files of d's runs (RulesFiles): each
// file once, under a line naming it and the runs that split with it, then
// its lines as read; a run whose file was not kept, by its rules hash.
func printRulesFiles(w io.Writer, d pipeline.Date, rs []ledger.RunRules) {
	var order []string
	shards := map[string][]string{}
	byHash := map[string]ledger.RunRules{}
	for _, r := range rs {
		k := "not kept " + r.RulesHash
		if r.Kept {
			k = r.FileHash
		}
		if _, ok := byHash[k]; !ok {
			order = append(order, k)
			byHash[k] = r
		}
		shards[k] = append(shards[k], r.ShardName)
	}
	for _, k := range order {
		r := byHash[k]
		runs := fmt.Sprintf("run %s shard %s", d, strings.Join(shards[k], ", "))
		if !r.Kept {
			fmt.Fprintf(w, "== %s: rules %s; the file was not kept (a run opened before settle kept its rules files, or with none) ==\n", runs, r.RulesHash)
			continue
		}
		fmt.Fprintf(w, "== %s: %s, rules %s ==\n", runs, r.Name, r.RulesHash)
		fmt.Fprint(w, r.Body)
		if !strings.HasSuffix(r.Body, "\n") {
			fmt.Fprintln(w)
		}
	}
}

// printRepricedRules prints the rules files date d was repriced with
// (settle reprice), oldest first: the last one's are the date's rules, a
// late refund of its orders splits under them.
func printRepricedRules(w io.Writer, d pipeline.Date, ps []ledger.Reprice) {
	for i, p := range ps {
		now := ""
		if i == len(ps)-1 {
			now = "; the date's rules now"
		}
		fmt.Fprintf(w, "== %s repriced at %s: %s, rules %s%s ==\n", d, p.RecordedAt.UTC().Format(time.RFC3339), p.Name, p.RulesHash, now)
		fmt.Fprint(w, p.Body)
		if !strings.HasSuffix(p.Body, "\n") {
			fmt.Fprintln(w)
		}
	}
}

// printStatus prints a date's status as text.
func printStatus(w io.Writer, s *ledger.DateStatus) {
	const stamp = "2006-01-02 15:04:05 MST"
	for _, sh := range s.NotStarted {
		fmt.Fprintf(w, "run %s shard %s: not started (its sellers are not settled, nor in the figures below; settle run --date %s runs it)\n", s.Date, sh, s.Date)
	}
	for _, run := range s.Runs {
		state := run.State
		switch {
		case run.Active:
			state += " (a process holds it now)"
		case run.State == string(pipeline.RunRunning):
			state = "stopped (no process holds it: killed, or ended before its last stage; settle run resumes it)"
		case run.State == string(pipeline.RunFailed) && run.NeedsPerson != "":
			// Ended needing a person (exit 4): what it could do is done;
			// "failed" read as nothing paid, or a retry helping.
			state = "needs a person (what it could do is done; the stages below pending wait on it)"
		}
		state += leftOut(run.Skipped)
		fmt.Fprintf(w, "run %s shard %s: %s, attempt %d, started %s", s.Date, run.Shard, state, run.Attempts, run.StartedAt.UTC().Format(stamp))
		if run.FinishedAt != nil {
			fmt.Fprintf(w, ", finished %s", run.FinishedAt.UTC().Format(stamp))
		}
		fmt.Fprintln(w)
		var stages []string
		failed := ""
		if run.State != string(pipeline.RunRunning) { // else an earlier attempt's error
			failed = failedStage(run.LastError)
		}
		for _, st := range run.Stages {
			mark := "pending"
			switch {
			case st.Done && st.Stage == failed:
				// A stage every invocation runs again (distribute,
				// reconcile), done by an earlier attempt: "done" beside
				// a last error of that stage read as the latest attempt
				// having done it - its reports written, say - when it
				// failed (found by a support walkthrough).
				mark = "done by an earlier attempt, failed in the latest (last error below)"
			case st.Done:
				mark = "done"
			}
			stages = append(stages, fmt.Sprintf("%s %s", st.Stage, mark))
		}
		fmt.Fprintf(w, "  stages: %s\n", strings.Join(stages, ", "))
		// A run recorded running (this attempt working, or stopped before
		// its end) keeps what an earlier attempt ended with until its own
		// end: shown bare, a killed attempt read as having ended so.
		earlier := ""
		if run.State == string(pipeline.RunRunning) {
			earlier = "as an earlier attempt ended: "
		}
		if run.LastError != "" {
			fmt.Fprintf(w, "  last error: %s%s\n", earlier, run.LastError)
		}
		if run.NeedsPerson != "" {
			fmt.Fprintf(w, "  needs a person: %s%s\n", earlier, run.NeedsPerson)
		}
		fmt.Fprintf(w, "  source rows read: %d\n", run.SourceRows)
		var totals []pipeline.Totals
		for _, t := range run.Totals {
			totals = append(totals, pipeline.Totals{Channel: pipeline.Channel(t.Channel), Currency: pipeline.Currency(t.Currency),
				Orders: t.Orders, Gross: t.Gross, Refunded: t.Refunded, Commission: t.Commission, Seller: t.Seller})
		}
		printTotals(w, totals)
		printRejects(w, run.Rejects, 50)
	}
	printShares(w, s.Totals)
	printEffects(w, s.Effects)
	fmt.Fprintf(w, "mismatches with the providers: %d unexpected, %d expected (timing); see mismatches.csv\n",
		s.Mismatches.Unexpected, s.Mismatches.Expected)
	printLateOrders(w, s.LateOrders)
	printLateRefunds(w, s.LateRefunds)
	printReprices(w, s.Date, s.Reprices)
	printCarried(w, s.Carried)
	for _, r := range s.Resolved {
		fmt.Fprintf(w, "resolved by a person: %s %s (%s) at %s by %s: %s\n", r.Kind, r.Subject, r.Key, r.ResolvedAt.UTC().Format(time.RFC3339), r.Who(), r.Note)
	}
}

// failedStage is the stage a run's last error names ("stage reconcile:
// ...", as the runner records a failure: pipeline.Runner.fail), or "".
func failedStage(lastError string) string {
	rest, ok := strings.CutPrefix(lastError, "stage ")
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, ":")
	if !ok {
		return ""
	}
	return name
}

// showHistory prints the history read returns (of what, given by flag) as
// one JSON document or as text, or says that the ledger holds no run yet.
func showHistory[H any](cfg *config, format, flag, what string, migrated bool, l *ledger.Ledger, read func() (H, error), text func(io.Writer, H)) error {
	if !migrated {
		return pipeline.Errorf(pipeline.KindUsage, flag, "%s: no run recorded (the ledger schema %s does not exist yet)", what, l.Schema())
	}
	h, err := read()
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(cfg.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(h)
	}
	text(controlSafe(cfg.stdout), h)
	return nil
}

// printSubject prints a subject's whole history as text (SubjectHistory).
func printSubject(w io.Writer, h *ledger.SubjectHistory) {
	const stamp = "2006-01-02 15:04:05.000Z"
	fmt.Fprintf(w, "%s of %s\n", h.Subject, h.Date)
	for _, r := range h.Runs {
		fmt.Fprintf(w, "run %d shard %s: started %s, time zone %s, rules %s, configuration %s\n",
			r.ID, r.Shard, r.StartedAt.UTC().Format(time.RFC3339), r.TimeZone, r.RulesHash, r.ConfigHash)
	}
	for _, a := range h.Attempts {
		fmt.Fprintf(w, "%s attempt %d, key %s: %s, %s, %s, %d sends", a.Kind, a.Attempt, a.Key,
			pipeline.Money{Minor: a.Amount, Currency: pipeline.Currency(a.Currency)}, a.State, a.Path, a.Sends)
		if a.ProviderRef != "" {
			fmt.Fprintf(w, ", provider reference %s", a.ProviderRef)
		}
		fmt.Fprintln(w)
		for i, ev := range a.History {
			line := fmt.Sprintf("  %s  %-9s %s, %d sends", ev.At.UTC().Format(stamp), ev.To, ev.Cause, ev.Sends)
			if d := eventDetail(a.History, i); d != "" {
				line += ": " + d
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, f := range h.Files {
		printTradeFile(w, f)
	}
	what := "orders it paid or carried"
	switch {
	case len(h.Attempts) == 0:
		what = "orders whose carried share it closed" // a close of a seller's carried balance
	case h.Attempts[0].Kind == infiniapay.KindUpload:
		what = "orders its file listed (and no later file of theirs)" // an upload pays nothing
	}
	fmt.Fprintf(w, "%s: %d\n", what, len(h.Items))
	for _, it := range h.Items {
		cur := pipeline.Currency(it.Currency)
		m := func(v int64) pipeline.Money { return pipeline.Money{Minor: v, Currency: cur} }
		fmt.Fprintf(w, "  %s seller %s %s: gross %s, refunded %s, commission %s, seller %s; rule %s; %s", it.OrderNo, it.SellerID, it.Channel,
			m(it.Gross), m(it.Refunded), m(it.Commission), m(it.Seller), it.Rule, it.State)
		if it.Reason != "" {
			fmt.Fprintf(w, " (%s)", it.Reason)
		}
		fmt.Fprintln(w)
		if it.Source != nil {
			fmt.Fprintf(w, "    read as %s\n", sourceRow(it.Source))
		} else {
			fmt.Fprintln(w, "    its source row: not kept")
		}
	}
	if len(h.Adjustments) > 0 {
		fmt.Fprintf(w, "carried entries netted into it, held for it or opened again by it: %d\n", len(h.Adjustments))
	}
	for _, a := range h.Adjustments {
		fmt.Fprintf(w, "  %s\n", adjustment(a))
	}
	printMismatches(w, h.Mismatches)
	for _, r := range h.Resolved {
		fmt.Fprintf(w, "resolved by a person: %s %s (%s) at %s by %s: %s\n", r.Kind, r.Subject, r.Key, r.ResolvedAt.UTC().Format(time.RFC3339), r.Who(), r.Note)
	}
}

// printMismatches prints what the reconciliation last found of a subject
// or an order (mismatches.csv's rows).
func printMismatches(w io.Writer, ms []ledger.SubjectMismatch) {
	if len(ms) > 0 {
		fmt.Fprintf(w, "what the reconciliation last found of it (mismatches.csv): %d\n", len(ms))
	}
	for _, m := range ms {
		side := func(v *int64, state string) string {
			amount := "no amount"
			if v != nil {
				amount = pipeline.Money{Minor: *v, Currency: pipeline.Currency(m.Currency)}.String()
			}
			return fmt.Sprintf("%s (%s)", amount, state)
		}
		kind := "unexpected"
		if m.Expected {
			kind = "expected"
		}
		fmt.Fprintf(w, "  %s %s %s, %s: ours %s, theirs %s", m.Provider, m.Category, m.Key, kind, side(m.Ours, m.OursState), side(m.Theirs, m.TheirsState))
		if m.Detail != "" {
			fmt.Fprintf(w, ": %s", m.Detail)
		}
		fmt.Fprintln(w)
	}
}

// printTradeFile prints an Infinia trade file with the status Infinia
// gave it.
func printTradeFile(w io.Writer, f ledger.SubjectFile) {
	// The upload's state is the delivery; what Infinia made of the
	// file is its status, recorded apart (trade_files).
	fmt.Fprintf(w, "trade file %s (requestNo %s, %d rows): ", f.Name, f.RequestNo, f.Rows)
	switch f.Status {
	case infiniapay.StatusSuccess, infiniapay.StatusFailed:
		fmt.Fprintf(w, "Infinia's status %s", f.Status)
	case fileBuilt:
		fmt.Fprint(w, "no status from Infinia recorded (every run of the date asks)")
	default:
		fmt.Fprintf(w, "Infinia's status %s, not final (every run of the date asks again)", f.Status)
	}
	if f.Reason != "" {
		fmt.Fprintf(w, ": %s", f.Reason)
	}
	fmt.Fprintf(w, " (recorded %s)\n", f.UpdatedAt.UTC().Format(time.RFC3339))
}

// sourceRow is a source row as the extract read it, NULLs said.
func sourceRow(src *ledger.SubjectSource) string {
	v := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	t := func(p *time.Time) string {
		if p == nil {
			return "NULL"
		}
		return p.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("row %d: seller %s, provider %s, transaction %s, currency %s, amount %s, refunded %s, category %s, paid %s, confirmed %s",
		src.Seq, v(src.SellerID), v(src.Provider), v(src.ProviderTxnID), v(src.Currency), v(src.Amount), v(src.Refunded), v(src.Category),
		t(src.PaidAt), t(src.ConfirmedAt))
}

// adjustment is an entry of the carried-balance journal: what, of which
// date, and where it is netted (or open).
func adjustment(a ledger.SubjectAdjustment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "entry %d %s %s of %s", a.ID, a.Kind, pipeline.Money{Minor: a.Amount, Currency: pipeline.Currency(a.Currency)}, a.Date)
	if a.OrderNo != "" {
		fmt.Fprintf(&b, ", order %s", a.OrderNo)
	}
	if a.RefundNo != "" {
		fmt.Fprintf(&b, ", refund %s", a.RefundNo)
	}
	switch {
	case a.NettedInto != "":
		fmt.Fprintf(&b, ", netted into %s", a.NettedInto)
	default:
		fmt.Fprint(&b, ", open")
	}
	if a.ReopenedFrom != "" {
		fmt.Fprintf(&b, ", opened again by the failure of %s", a.ReopenedFrom)
	}
	if a.Reason != "" {
		fmt.Fprintf(&b, ": %s", a.Reason)
	}
	return b.String()
}

// printOrder prints what the ledger holds of an order of a date as text
// (OrderHistory).
func printOrder(w io.Writer, h *ledger.OrderHistory) {
	fmt.Fprintf(w, "order %s of %s\n", h.OrderNo, h.Date)
	itemRun := int64(-1)
	if len(h.Items) > 0 {
		itemRun = h.Items[0].RunID
	}
	for _, r := range h.Rows {
		fmt.Fprintf(w, "run %d shard %s: ", r.RunID, r.Shard)
		if r.Source != nil {
			fmt.Fprintf(w, "read %s", sourceRow(r.Source))
		} else {
			fmt.Fprintf(w, "row %d not kept (its run read its date again since)", r.Seq)
		}
		switch {
		case r.Reject != nil:
			rj := r.Reject
			if r.Source == nil {
				fmt.Fprintf(w, "; as its reject recorded it: seller %s, provider %s, currency %s, amount %s, refunded %s", rj.SellerID, rj.Provider, rj.Currency, rj.Amount, rj.Refunded)
			}
			fmt.Fprintf(w, "; rejected: %s\n", rj.Reason)
		case r.RunID == itemRun:
			fmt.Fprintln(w, "; settled as its item")
		default:
			fmt.Fprintln(w, "; not split yet (the run's transform stage is not done: settle run resumes it)")
		}
	}
	for _, it := range h.Items {
		cur := pipeline.Currency(it.Currency)
		m := func(v int64) pipeline.Money { return pipeline.Money{Minor: v, Currency: cur} }
		fmt.Fprintf(w, "item of run %d shard %s: seller %s %s, transaction %s: gross %s, refunded %s, commission %s, seller %s; rule %s; %s",
			it.RunID, it.Shard, it.SellerID, it.Channel, it.ProviderTxnID, m(it.Gross), m(it.Refunded), m(it.Commission), m(it.Seller), it.Rule, it.State)
		if it.Reason != "" {
			fmt.Fprintf(w, " (%s)", it.Reason)
		}
		fmt.Fprintln(w)
		if it.Source == nil {
			fmt.Fprintln(w, "  its source row: not kept")
		}
		if it.PayoutKey == "" && it.CarryID == nil {
			fmt.Fprintln(w, "  payout: none yet")
		}
	}
	for _, p := range h.Payouts {
		fmt.Fprintf(w, "payout: %s %s attempt %d, key %s, of %s: %s, %s, %s, %d sends", p.Kind, p.Subject, p.Attempt, p.Key, p.Date,
			pipeline.Money{Minor: p.Amount, Currency: pipeline.Currency(p.Currency)}, p.State, p.Path, p.Sends)
		if p.ProviderRef != "" {
			fmt.Fprintf(w, ", provider reference %s", p.ProviderRef)
		}
		fmt.Fprintf(w, " (its history: settle status --date %s --subject %s)\n", p.Date, p.Subject)
	}
	for _, a := range h.Carried {
		fmt.Fprint(w, "carried")
		if a.Subject != "" {
			fmt.Fprintf(w, " (not paid by %s)", a.Subject)
		}
		fmt.Fprintf(w, " in %s\n", adjustment(a))
	}
	for _, f := range h.Files {
		printTradeFile(w, f)
	}
	if len(h.LateRefunds) > 0 {
		fmt.Fprintf(w, "late refunds: %d\n", len(h.LateRefunds))
	}
	for _, lr := range h.LateRefunds {
		amount := fmt.Sprintf("%d minor units", lr.Amount)
		if lr.Currency != "" {
			amount = pipeline.Money{Minor: lr.Amount, Currency: pipeline.Currency(lr.Currency)}.String()
		}
		fmt.Fprintf(w, "  %s of %s, read on %s: %s", lr.RefundNo, amount, lr.Date, lr.State)
		if lr.Reason != "" {
			fmt.Fprintf(w, " (%s)", lr.Reason)
		}
		fmt.Fprintln(w)
	}
	if len(h.Clawbacks) > 0 {
		fmt.Fprintf(w, "clawbacks: %d\n", len(h.Clawbacks))
	}
	for _, a := range h.Clawbacks {
		fmt.Fprintf(w, "  %s\n", adjustment(a))
	}
	if len(h.Reprices) > 0 {
		fmt.Fprintf(w, "reprices: %d\n", len(h.Reprices))
	}
	for _, a := range h.Reprices {
		fmt.Fprintf(w, "  %s\n", adjustment(a))
	}
	printMismatches(w, h.Mismatches)
	if len(h.LateOrders) > 0 {
		fmt.Fprintf(w, "what the looks at %s's window found of it since %s was read: %d\n", h.Date, h.Date, len(h.LateOrders))
	}
	for _, o := range h.LateOrders {
		fmt.Fprintf(w, "  %s\n", lateOrderLine(o))
	}
	for _, r := range h.Resolved {
		fmt.Fprintf(w, "resolved by a person: %s %s (%s) at %s by %s: %s\n", r.Kind, r.Subject, r.Key, r.ResolvedAt.UTC().Format(time.RFC3339), r.Who(), r.Note)
	}
}

// printLateOrders prints what the looks at the date's window found since
// the date was read (README, "Rows written into a settled window
// afterwards"): when the latest look was, and the orders it found, then
// those earlier looks found that it did not (cleared).
func printLateOrders(w io.Writer, lo ledger.LateOrdersStatus) {
	const what = "orders written into this date's window since it was read, or changed or gone since"
	if lo.LookedAt == nil {
		fmt.Fprintf(w, "%s: not looked for yet (a run of one of the --recheck-days dates after it looks, or a run of the date again)\n", what)
		return
	}
	by := ""
	if lo.LookedBy != "" {
		by = ", by the run of " + lo.LookedBy
	}
	fmt.Fprintf(w, "%s: %d found by the latest look (%s%s)", what, lo.Found, lo.LookedAt.UTC().Format("2006-01-02 15:04:05 MST"), by)
	if lo.Cleared > 0 {
		fmt.Fprintf(w, "; %d found by earlier looks and not by it (cleared)", lo.Cleared)
	}
	if lo.Found > 0 {
		fmt.Fprint(w, "; each needs a person (settle status --order O; mismatches.csv, category late_order)")
	}
	fmt.Fprintln(w)
	for _, o := range lo.Listed {
		fmt.Fprintf(w, "  %s\n", lateOrderLine(o))
	}
	if n := lo.Found + lo.Cleared - len(lo.Listed); n > 0 {
		fmt.Fprintf(w, "  ... %d more (the ledger's late_orders)\n", n)
	}
}

// lateOrderLine says what a look found of an order: its kind, what the
// ledger held of it, what was found, when, and whether the latest look
// no longer found it.
func lateOrderLine(o ledger.LateOrder) string {
	var b strings.Builder
	fmt.Fprintf(&b, "order %s %s", o.OrderNo, o.Kind)
	switch o.State {
	case ledger.LateOrderNotRead:
		b.WriteString(" (read by no run)")
	case ledger.LateOrderSettled:
		fmt.Fprintf(&b, " (settled on %s, seller %s", o.SettledOn, o.SellerID)
		if o.Settled != nil {
			fmt.Fprintf(&b, ", %s", pipeline.Money{Minor: *o.Settled, Currency: pipeline.Currency(o.Currency)})
		}
		b.WriteString(")")
	case ledger.LateOrderRejected:
		b.WriteString(" (rejected when read)")
	default:
		b.WriteString(" (not classified yet)")
	}
	const stamp = "2006-01-02 15:04:05 MST"
	fmt.Fprintf(&b, ": %s; first seen %s, last seen %s", o.Detail, o.FirstSeen.UTC().Format(stamp), o.LastSeen.UTC().Format(stamp))
	if o.LastRun != "" {
		fmt.Fprintf(&b, " by the run of %s", o.LastRun)
	}
	if o.Cleared {
		b.WriteString("; cleared: the latest look did not find it")
	}
	return b.String()
}

// printShares prints where the date's seller shares are, by currency.
func printShares(w io.Writer, totals []ledger.StatusTotal) {
	if len(totals) == 0 {
		return
	}
	fmt.Fprintln(w, "seller shares of the date (each minor unit in one column; late refunds' clawbacks carried; see summary.csv):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "currency\tseller share\tpaid\tcarried\theld\tunverified\trejected by provider\tin progress\tof carried, paid later\tof unverified and in progress, left out on purpose\t")
	for _, t := range totals {
		c := pipeline.Currency(t.Currency)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.Currency, pipeline.FormatMinor(t.Seller, c),
			pipeline.FormatMinor(t.Paid, c), pipeline.FormatMinor(t.Carried, c), pipeline.FormatMinor(t.Held, c),
			pipeline.FormatMinor(t.Unverified, c), pipeline.FormatMinor(t.RejectedByProvider, c),
			pipeline.FormatMinor(t.InProgress, c), pipeline.FormatMinor(t.PaidLater, c), pipeline.FormatMinor(t.Skipped, c))
	}
	tw.Flush()
}

// leftOut says, after a run's state, which channels the run left out on
// purpose (--skip-channel) and how many of their orders wait: "" when none.
// A run done so is done by the operator's word, its orders not being paid.
func leftOut(skipped []ledger.Skipped) string {
	var chans []string
	orders := map[string]int64{}
	for _, s := range skipped {
		if _, ok := orders[s.Channel]; !ok {
			chans = append(chans, s.Channel)
		}
		orders[s.Channel] += s.Orders
	}
	var b strings.Builder
	for _, ch := range chans {
		fmt.Fprintf(&b, "; channel %s left out on purpose (%d orders unpaid, --%s: a run with its provider configured pays them)", ch, orders[ch], flagSkipChannel)
	}
	return b.String()
}

// printEffects prints the date's side effects: counts, and those worth a
// look with their history.
func printEffects(w io.Writer, es ledger.EffectsStatus) {
	if len(es.Counts) == 0 {
		fmt.Fprintln(w, "side effects: none")
		return
	}
	var kinds []string
	for k := range es.Counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		var states []string
		for st, n := range es.Counts[k] {
			states = append(states, fmt.Sprintf("%d %s", n, st))
		}
		sort.Strings(states)
		parts = append(parts, k+" "+strings.Join(states, ", "))
	}
	fmt.Fprintf(w, "side effects: %s; %d sends; %d went through unknown\n", strings.Join(parts, "; "), es.Sends, es.ThroughUnknown)
	// The money that moved for the date, as a finance check of a provider's
	// account wants it (the README's "Tying a date to the platform's
	// Infinia account"): summary.csv's paid counts the date's own orders,
	// not the carried entries the revenue shares netted.
	for _, m := range []struct{ kind, what string }{
		{infiniapay.KindRevenueShare, "revenue shares succeeded (what left the platform's Infinia account for the date: its orders and the carried entries netted)"},
		{wechatpay.KindDistribution, "distributions succeeded (the commission WeChat Pay moved to the platform)"},
	} {
		sums := es.Succeeded[m.kind]
		if len(sums) == 0 {
			continue
		}
		var curs []string
		for c := range sums {
			curs = append(curs, c)
		}
		sort.Strings(curs)
		var amounts []string
		for _, c := range curs {
			amounts = append(amounts, pipeline.Money{Minor: sums[c], Currency: pipeline.Currency(c)}.String())
		}
		fmt.Fprintf(w, "  %s: %s\n", m.what, strings.Join(amounts, ", "))
	}
	if es.WorthALook == 0 {
		return
	}
	fmt.Fprintf(w, "side effects worth a look (answer lost, sent again, failed or not final): %d\n", es.WorthALook)
	for _, e := range es.Listed {
		fmt.Fprintf(w, "  %s %s attempt %d (%s): %s, %s, %d sends\n", e.Kind, e.Subject, e.Attempt, e.Key, e.State, e.Path, e.Sends)
		for i, h := range e.History {
			if left := len(e.History) - historyHead - historyTail; left > 1 && i >= historyHead && i < len(e.History)-historyTail {
				if i == historyHead {
					fmt.Fprintf(w, "    ... %d more events (settle status -o json lists them all)\n", left)
				}
				continue
			}
			line := fmt.Sprintf("    %s  %-9s %s", h.At.UTC().Format("2006-01-02 15:04:05.000Z"), h.To, h.Cause)
			if d := eventDetail(e.History, i); d != "" {
				line += ": " + d
			}
			fmt.Fprintln(w, line)
		}
	}
	if n := es.WorthALook - len(es.Listed); n > 0 {
		fmt.Fprintf(w, "  ... %d more (see payouts.csv)\n", n)
	}
}

// fileBuilt is the status the ledger gives a trade file it built, before
// any status of Infinia's (trade_files.status's default).
const fileBuilt = "BUILT"

// eventDetail is the provider's words status prints beside event i of an
// effect's history: none beside a send that only carries the error of the
// event before it. Each event holds the effect's last error as it then
// stood (effects_history_guard), so a send again after a lost answer
// showed the first send's "EOF" as if the second had got it too, when
// the second was answered ("did we pay it twice?": found by a support
// walkthrough); -o json keeps every event as recorded.
func eventDetail(history []ledger.StatusEvent, i int) string {
	ev := history[i]
	if i > 0 && (ev.Cause == string(pipeline.CauseSent) || ev.Cause == string(pipeline.CauseResent)) && ev.Detail == history[i-1].Detail {
		return ""
	}
	return ev.Detail
}

// The events of an effect's history status prints as text: the first
// historyHead and the last historyTail, the rest counted. A revenue share
// Infinia answered "retry later" for the whole wait had 25 events, and 34
// of them filled 850 lines; the first and last say what happened.
const historyHead, historyTail = 3, 4

// printReprices prints the date's reprices (settle reprice), oldest
// first: the last one's rules are the date's.
func printReprices(w io.Writer, date string, ps []ledger.Reprice) {
	for i, p := range ps {
		fmt.Fprintf(w, "repriced %s at %s under %s (rules %s): %d orders adjusted", date, p.RecordedAt.UTC().Format(time.RFC3339), p.Name, p.RulesHash, p.Orders)
		for _, t := range p.Totals {
			cur := pipeline.Currency(t.Currency)
			fmt.Fprintf(w, "; %s: %s given, %s taken back, %s not netted into a revenue share yet", t.Currency,
				pipeline.Money{Minor: t.Given, Currency: cur}, pipeline.Money{Minor: -t.Taken, Currency: cur}, pipeline.Money{Minor: t.Open, Currency: cur})
		}
		if p.Named > 0 {
			fmt.Fprintf(w, "; %d orders named for a person (their channel's shares are not netted)", p.Named)
		}
		if i == len(ps)-1 {
			fmt.Fprint(w, "; its rules are the date's")
		}
		fmt.Fprintln(w)
	}
}

// printLateRefunds prints the late refunds read on the date.
func printLateRefunds(w io.Writer, lr ledger.LateRefundStatus) {
	total := 0
	var states []string
	for st, n := range lr.ByState {
		total += n
		states = append(states, fmt.Sprintf("%d %s", n, st))
	}
	if total == 0 {
		fmt.Fprintln(w, "late refunds read on this date: none")
		return
	}
	sort.Strings(states)
	fmt.Fprintf(w, "late refunds read on this date: %d (%s)\n", total, strings.Join(states, ", "))
	if len(lr.Waiting) > 0 {
		fmt.Fprintf(w, "  waiting for their order to settle: %d (e.g. %s of order %s)\n", lr.ByState[pipeline.LateRefundPending],
			lr.Waiting[0].RefundNo, lr.Waiting[0].OrderNo)
	}
}

// printCarried prints every seller's open carried balance.
func printCarried(w io.Writer, carries []ledger.CarriedBalance) {
	if len(carries) == 0 {
		fmt.Fprintln(w, "carried balances: none")
		return
	}
	fmt.Fprintln(w, "carried balances (all dates; netted into each seller's next revenue share, never sent negative; since: the oldest open entry's date; last: the newest's date and why, its orders in that date's orders.csv):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seller\tcurrency\tentries\tbalance\tsince\t  last")
	const max = 50
	for i, c := range carries {
		if i == max {
			fmt.Fprintf(tw, "... %d more\t\t\t\t\t\n", len(carries)-max)
			break
		}
		last := c.LastDate
		if c.LastReason != "" {
			last += ": " + c.LastReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t  %s\n", c.SellerID, c.Currency, c.Entries, pipeline.Money{Minor: c.Amount, Currency: pipeline.Currency(c.Currency)}, c.Since, last)
	}
	tw.Flush()
}
