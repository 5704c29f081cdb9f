package main

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/internal/pgserver"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/seed"
)

// demoRules is the commission rules file the demo settles with: a copy of
// testdata/demo/rules.csv (Go cannot embed from a parent folder), kept
// byte-identical by TestDemoScenarioIsTheDemo.
//
//go:embed demo_rules.csv
var demoRules []byte

// demoSeed is the random seed of the demo's day (testdata/demo/seed.json).
const demoSeed = 1

func demoCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "settle a synthetic day end to end with no set-up: seed, run, re-run, report",
		Description: "Starts a throwaway PostgreSQL from the locally installed binaries (removed when the demo ends),\n" +
			"or uses the database named by its own --database-url, where it writes the reference platform tables\n" +
			"and the job's schema. It never reads SETTLE_DATABASE_URL (nor any other environment variable): an\n" +
			"operator's production URL in the shell is never written to.",
		// No environment variables: the demo writes synthetic orders and a
		// ledger run, only where its own command line says.
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagDatabaseURL, Usage: "PostgreSQL URL to write the demo to (default: a throwaway server); must name its sslmode"},
			&cli.BoolFlag{Name: flagDatabasePlaintext, Usage: "take a --database-url of sslmode disable, allow or prefer to another machine (refused without it)"},
			&cli.StringFlag{Name: flagTZ, Value: "Asia/Shanghai", Usage: "time zone of business dates"},
			&cli.StringFlag{Name: flagOut, Value: "reports", Usage: "directory of the reports; the date's go under DIR/YYYY-MM-DD/"},
			&cli.StringFlag{Name: flagDate, Usage: "business date to settle (default: yesterday in --tz)"},
			&cli.IntFlag{Name: "orders", Value: 2000, Usage: "orders to seed"},
			&cli.IntFlag{Name: "sellers", Value: 40, Usage: "sellers to seed"},
			&cli.IntFlag{Name: "bad-rows", Value: 9, Usage: "bad rows among the orders (unset: 9, one of each kind, or a tenth of fewer than 90 orders, within the run's reject limit)"},
			&cli.IntFlag{Name: "polls", Usage: "status queries each simulated provider answers PROCESSING before the final status (0: the first answer is final)"},
		},
		Action: func(c *cli.Context) error { return cfg.demo(c) },
	}
}

func (cfg *config) demo(c *cli.Context) error {
	ctx := c.Context
	w := cfg.stdout
	url := c.String(flagDatabaseURL)
	if url != "" {
		// Checked as every command checks it (TLS to another machine),
		// before the demo's orders are written there.
		if _, err := databaseURL(c); err != nil {
			return err
		}
	}
	if url == "" {
		fmt.Fprintln(w, "starting a throwaway PostgreSQL (settle demo --database-url URL uses yours) ...")
		// An empty directory: the server creates its own and removes it on
		// Stop, data and all.
		srv, err := pgserver.Start(ctx, "", nil) // its errors carry the server log
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer srv.Stop()
		url = srv.URL("postgres")
		if err := c.Set(flagDatabaseURL, url); err != nil {
			return err
		}
	}
	loc, err := location(c)
	if err != nil {
		return err
	}
	d, err := cfg.businessDate(c, loc)
	if err != nil {
		return err
	}
	rulesDir, err := os.MkdirTemp("", "settle-demo-rules-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(rulesDir)
	rulesPath := filepath.Join(rulesDir, "demo_rules.csv")
	if err := os.WriteFile(rulesPath, demoRules, 0o600); err != nil {
		return err
	}

	if err := cfg.demoDateUnsettled(ctx, c, d); err != nil {
		return err
	}
	if err := cfg.seed(ctx, url, false, seed.Options{Date: d, Location: loc, Orders: c.Int("orders"),
		Sellers: c.Int("sellers"), Seed: demoSeed, BadRows: demoBadRows(c)}); err != nil {
		return err
	}
	l, err := cfg.openLedger(ctx, c, true)
	if err != nil {
		return err
	}
	defer l.Close()
	simDir, err := os.MkdirTemp("", "settle-demo-paysim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(simDir)
	sim, err := startDemoSimulator(simDir, c.Int("sellers"), c.Int("polls"))
	if err != nil {
		return fmt.Errorf("demo: simulator: %w", err)
	}
	defer sim.Close()
	inf, err := newInfinia(infiniaParams{URL: sim.Config.InfiniaURL, AppID: sim.Config.AppID, PlatformID: sim.Config.PlatformID,
		KeyFile: sim.Config.OurKeyFile, PublicKeyFile: sim.Config.InfiniaPublicKeyFile, SFTPAddr: sim.Config.SFTPAddr,
		SFTPUser: sim.Config.SFTPUser, SFTPKey: sim.Config.SFTPKeyFile, KnownHosts: sim.Config.KnownHostsFile,
		SFTPDir: "upload", WorkDir: filepath.Join(simDir, "work"), Wait: demoWait, Poll: 20 * time.Millisecond, Rate: 500})
	if err != nil {
		return err
	}
	pp, err := newPayProtocol(sim.Config.PayProtocolURL, sim.Config.PayProtocolAPIKey, sim.Config.PayProtocolSecretFile, paysim.PayProtocolDecimals, 500)
	if err != nil {
		return err
	}
	platform, err := openDB(ctx, url)
	if err != nil {
		return err
	}
	defer platform.Close()
	if _, err := sim.SeedPayProtocol(ctx, platform, sourceQueryDefault(), pipeline.WindowOf(d, loc)); err != nil {
		return fmt.Errorf("demo: simulated Pay Protocol payments: %w", err)
	}
	if _, err := sim.SeedWeChat(ctx, platform, sourceQueryDefault(), pipeline.WindowOf(d, loc)); err != nil {
		return fmt.Errorf("demo: simulated WeChat transactions: %w", err)
	}
	// WeChat Pay's documented limits, which the simulator enforces.
	wx, err := newWeChat(sim.WeChat.ClientConfig(sim.Config.WeChatURL), 300, 30, sim.Config.WeChatReceiverAccount, sim.Config.WeChatReceiverName, "DISTRIBUTOR", 3000)
	if err != nil {
		return err
	}
	before := sim.balances()
	rules, err := loadRules(rulesPath, d)
	if err != nil {
		return err
	}
	w0 := pipeline.WindowOf(d, loc)
	opts := &runOptions{
		unfinished: true, // its own day, seeded: read whenever asked
		key:        pipeline.RunKey{Date: d, Shard: pipeline.Whole}, window: w0, tz: loc.String(),
		until: pipeline.StageReconcile, classify: classifier(rules, d, w0), rulesHash: rules.Hash(), rules: rules,
		query: sourceQueryDefault(), sellersQ: sellersQueryDefault(), lateQ: lateRefundsQueryDefault(), sourceURL: url, reports: reportWriter{reports: reportsFor(c)}, maxRejectRt: demoMaxRejectRatio,
		infinia: inf, payProtocol: pp, wechat: wx, wait: demoWait, poll: 20 * time.Millisecond,
		// Its requests go to its own new simulator, from a ledger that
		// has no run of the date (demoDateUnsettled): no provider can
		// have forgotten them, whatever --date's age.
		sendPastMemory: true,
	}
	fmt.Fprintln(w, "\n== first run")
	start := time.Now()
	firstErr := cfg.settle(ctx, l, opts)
	if firstErr != nil && pipeline.KindOf(firstErr) != pipeline.KindNeedsPerson {
		return firstErr
	}
	first := time.Since(start)
	fmt.Fprintln(w, "\n== the same date again (must send no money again)")
	before1, err := moneyEffects(ctx, l, d)
	if err != nil {
		return err
	}
	start = time.Now()
	againErr := cfg.settle(ctx, l, opts)
	if againErr != nil && pipeline.KindOf(againErr) != pipeline.KindNeedsPerson {
		return againErr
	}
	again := time.Since(start)
	after, err := moneyEffects(ctx, l, d)
	if err != nil {
		return err
	}
	// Sending again what was sent is the failure; paying what became due
	// since (a Pay Protocol payment confirmed in between) is correct.
	resent, due := sentAgain(before1, after)
	if len(resent) > 0 {
		return fmt.Errorf("demo: the re-run sent money again: %s", strings.Join(resent, "; "))
	}
	if due > 0 {
		fmt.Fprintf(w, "the re-run sent %d money requests newly due (payments confirmed since the first run), none again\n", due)
	}
	if err := cfg.demoSummary(ctx, l, d, c.String(flagOut), first, again, codeOf(firstErr), codeOf(againErr), due); err != nil {
		return err
	}
	if err := cfg.demoMoney(ctx, l, d, sim, before); err != nil {
		return err
	}
	return cfg.demoWeChat(ctx, l, d, sim)
}

// demoDateUnsettled refuses (exit 2), before anything is written, a demo
// of a date its --database-url's ledger holds a run of (an earlier demo's
// there): the demo's simulator is its own and new, it knows none of that
// run's payouts, and its self-check compares what the ledger paid on the
// date with what this simulator's balances moved. The demo settled
// nothing new and ended 1, "DOES NOT MATCH the ledger", "running the same
// command again is safe", on every run again (found by an operator's
// trial). Nothing is migrated here: a database the demo refuses for its
// orders is left as it was.
func (cfg *config) demoDateUnsettled(ctx context.Context, c *cli.Context, d pipeline.Date) error {
	l, err := cfg.openLedger(ctx, c, false)
	if err != nil {
		return err
	}
	defer l.Close()
	migrated, err := l.Migrated(ctx)
	if err != nil || !migrated {
		return err
	}
	runs, err := l.RunsOn(ctx, d)
	if err != nil || len(runs) == 0 {
		return err
	}
	return pipeline.Errorf(pipeline.KindUsage, "--"+flagDate,
		"%s was settled on this database already (run %d): this demo's simulator is a new one that knows none of its payouts; give the demo another --date, or a new database", d, runs[0].ID)
}

// demoMaxRejectRatio is the demo's reject tolerance: its day has bad rows
// of every kind and Pay Protocol payments in every status on purpose (some
// refunded: rejected by the provider; the failed ones are held, as they
// may still be paid late), which at a few hundred orders is more than the
// production default of 5%.
const demoMaxRejectRatio = 0.2

func (cfg *config) demoSummary(ctx context.Context, l *ledger.Ledger, d pipeline.Date, out string, first, again time.Duration, firstCode, againCode, due int) error {
	run, err := l.GetRun(ctx, pipeline.RunKey{Date: d, Shard: pipeline.Whole})
	if err != nil || run == nil {
		return fmt.Errorf("demo: run not recorded: %v", err)
	}
	w := cfg.stdout
	fmt.Fprintf(w, "\n== summary\n")
	fmt.Fprintf(w, "date %s run in %s (exit %d); re-run took %s (exit %d) and sent no money request again (run attempts: %d)\n",
		d, first.Round(time.Millisecond), firstCode, again.Round(time.Millisecond), againCode, run.Attempts)
	if firstCode == 4 || againCode == 4 {
		fmt.Fprintln(w, "exit 4: the demo's day has problems for a person on purpose (bad rows, payments held, refused")
		fmt.Fprintln(w, "answers); the run's last lines and the reports name each")
	}
	if due > 0 {
		fmt.Fprintln(w, "Pay Protocol payments confirmed since the first run went out in further trade files, carried to")
		fmt.Fprintln(w, "their sellers' next revenue share (the date's is paid)")
	}
	fmt.Fprintf(w, "reports: %s\n", filepath.Join(out, d.String()))
	fmt.Fprintln(w, "Infinia Pay is simulated in-process (internal/paysim): the job speaks its real envelope and SFTP to it.")
	fmt.Fprintln(w, "Pay Protocol is simulated too: its payments come in every status; only verified ones are paid,")
	fmt.Fprintln(w, "orders.csv says why each other one is not.")
	fmt.Fprintln(w, "WeChat Pay Global is simulated as well: each transaction's commission is distributed to the")
	fmt.Fprintln(w, "platform's receiver and the rest unfrozen to the seller.")
	unexpected, expected, err := l.MismatchCounts(ctx, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "reconciled against all three providers: %d unexpected mismatches, %d expected (timing: WeChat funds\n", unexpected, expected)
	fmt.Fprintln(w, "still UNSETTLE, bills not out until the morning after the Beijing day, Pay Protocol payments still confirming): mismatches.csv")
	carries, err := l.OpenCarries(ctx, pipeline.Date{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "carried to the sellers' next revenue share (not bound, or below the minimum): %d balances; settle status lists them\n", len(carries))
	return nil
}

// demoBadRows is --bad-rows when given; unset, 9 (one of each of
// seed.BadKinds, the unknown seller too), or a
// tenth of a smaller day: 9 bad rows of 10 orders are over the run's
// reject limit (--max-reject-ratio, 20%), and a demo of 10 orders would
// end refusing its day.
func demoBadRows(c *cli.Context) int {
	if c.IsSet("bad-rows") {
		return c.Int("bad-rows")
	}
	return min(c.Int("bad-rows"), max(c.Int("orders"), 0)/10)
}

// demoSim is the simulator with the demo's state: most sellers bound, some
// not (their shares are held), and the platform's balances funded. It
// answers at once, and every status final on the first ask unless --polls
// says otherwise: the demo shows what the machine can do (issue #12's
// "instant answers"); one PROCESSING a status cost two more of WeChat
// Pay's 300 requests a second per transaction, and the demo waited on them.
type demoSim struct{ *paysim.Sim }

// demoCurrencies are the currencies the seed pays through Infinia (its
// platform balances, funded and shown).
var demoCurrencies = []pipeline.Currency{"CNY", "EUR", "JPY", "KWD", "USD"}

func startDemoSimulator(dir string, sellers, polls int) (demoSim, error) {
	if polls <= 0 {
		polls = -1 // paysim's "none": its zero value is one
	}
	sim, err := paysim.Start(paysim.Options{Dir: dir, Polls: polls})
	if err != nil {
		return demoSim{}, err
	}
	for i := 1; i <= sellers; i++ {
		status := "ACTIVE"
		if i%10 == 0 {
			status = "PENDING"
		}
		sim.Infinia.SetBinding(seed.InfiniaID(i), status)
	}
	for _, cur := range demoCurrencies {
		sim.Infinia.SetBalance(cur, 1_000_000_000_00)
	}
	return demoSim{sim}, nil
}

func (s demoSim) balances() map[pipeline.Currency]int64 {
	out := map[pipeline.Currency]int64{}
	for _, cur := range demoCurrencies {
		out[cur] = s.Infinia.Balance(cur)
	}
	return out
}

// demoMoney shows that the simulated platform balance fell by exactly what
// the ledger says was paid.
func (cfg *config) demoMoney(ctx context.Context, l *ledger.Ledger, d pipeline.Date, sim demoSim, before map[pipeline.Currency]int64) error {
	paid, err := l.PaidByCurrency(ctx, d, infiniapay.KindRevenueShare)
	if err != nil {
		return err
	}
	w := cfg.stdout
	fmt.Fprintln(w, "Infinia revenue sharing (simulated platform balance):")
	after := sim.balances()
	for _, cur := range demoCurrencies {
		moved := before[cur] - after[cur]
		check := "matches the ledger"
		if moved != paid[cur].Minor {
			check = "DOES NOT MATCH the ledger"
		}
		fmt.Fprintf(w, "  %s  paid %4d shares  %16s   balance fell by %16s  %s\n", cur, paid[cur].Count,
			pipeline.FormatMinor(paid[cur].Minor, cur), pipeline.FormatMinor(moved, cur), check)
		if moved != paid[cur].Minor {
			return fmt.Errorf("demo: %s balance moved by %d, the ledger paid %d", cur, moved, paid[cur].Minor)
		}
	}
	return nil
}

// demoWeChat shows that every settled WeChat transaction ends with nothing
// frozen and exactly its commission distributed.
func (cfg *config) demoWeChat(ctx context.Context, l *ledger.Ledger, d pipeline.Date, sim demoSim) error {
	var rows []struct {
		Txn        string `db:"provider_txn_id"`
		Currency   string `db:"currency"`
		Commission int64  `db:"commission_minor"`
	}
	if err := l.DB().SelectContext(ctx, &rows, `SELECT provider_txn_id, currency, commission_minor FROM items
		WHERE business_date = $1 AND channel = 'wechatpay' AND state = 'paid'`, d.String()); err != nil {
		return err
	}
	commission := map[pipeline.Currency]int64{}
	for _, r := range rows {
		if f, dist := sim.WeChat.Frozen(r.Txn), sim.WeChat.Distributed(r.Txn); f != 0 || dist != r.Commission {
			return fmt.Errorf("demo: WeChat transaction %s: %d still frozen, %d distributed, commission %d", r.Txn, f, dist, r.Commission)
		}
		commission[pipeline.Currency(r.Currency)] += r.Commission
	}
	var sums []string
	for _, cur := range slices.Sorted(maps.Keys(commission)) {
		sums = append(sums, pipeline.Money{Minor: commission[cur], Currency: cur}.String())
	}
	fmt.Fprintf(cfg.stdout, "WeChat funds distribution (simulated): %d transactions settled, nothing left frozen in any,\n", len(rows))
	fmt.Fprintf(cfg.stdout, "  exactly the commission distributed to the platform (%s)\n", strings.Join(sums, ", "))
	return nil
}

// demoEffect is one money effect of the demo's date: what the self-check
// compares across the re-run.
type demoEffect struct {
	Key     string `db:"idem_key"`
	Kind    string `db:"kind"`
	Subject string `db:"subject"`
	State   string `db:"state"`
	Sends   int64  `db:"sends"`
}

// moneyEffects returns the money effects (revenue shares, distributions,
// unfreezes) of the date's runs.
func moneyEffects(ctx context.Context, l *ledger.Ledger, d pipeline.Date) ([]demoEffect, error) {
	var out []demoEffect
	err := l.DB().SelectContext(ctx, &out, `SELECT e.idem_key, e.kind, e.subject, e.state, e.sends FROM effects e
		JOIN runs r ON r.id = e.run_id WHERE r.business_date = $1 AND e.kind = ANY ($2) ORDER BY e.id`,
		d.String(), pq.Array([]string{infiniapay.KindRevenueShare, wechatpay.KindDistribution, wechatpay.KindUnfreeze}))
	return out, err
}

// sentAgain compares the money effects before and after a re-run. Sent
// again: an effect sent before that was sent once more (an unknown outcome
// is resolved by query, never by a resend), or a new request for a subject
// already paid. Newly due: every other request sent by the re-run (never
// sent before: a payment confirmed in between, a carried balance now due).
func sentAgain(before, after []demoEffect) (again []string, due int) {
	old := map[string]demoEffect{}
	paid := map[string]bool{}
	for _, e := range before {
		old[e.Key] = e
		if e.State == string(pipeline.EffectSucceeded) {
			paid[e.Kind+" "+e.Subject] = true
		}
	}
	for _, e := range after {
		b, existed := old[e.Key]
		switch {
		case existed && b.Sends > 0 && e.Sends > b.Sends:
			again = append(again, fmt.Sprintf("%s %s sent %d times more", e.Kind, e.Subject, e.Sends-b.Sends))
		case !existed && e.Sends > 0 && paid[e.Kind+" "+e.Subject]:
			again = append(again, fmt.Sprintf("%s %s paid before, sent again as %s", e.Kind, e.Subject, e.Key))
		case e.Sends > b.Sends: // b is zero when new
			due++
		}
	}
	return again, due
}

// demoWait is the demo's --provider-wait: the run command's default. Its
// simulator answers a file or a payout final only after a few questions
// (RECEIVED, PROCESSING ...), and every question takes one of the
// provider's tokens, so a day of tens of thousands of sellers is asked
// about for minutes: a shorter wait would end such a demo with work left
// for a re-run. A simulator that answers at once never waits on it.
const demoWait = 10 * time.Minute
