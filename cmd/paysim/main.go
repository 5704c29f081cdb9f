// Command paysim runs the provider simulator as its own process: the
// stateful fakes of Infinia Pay (HTTP API and SFTP server), Pay Protocol and
// WeChat Pay Global on loopback ports, with fault injection. They are
// simulations, for trying the job against something that behaves like the
// providers; paysim prints the environment the job needs to reach them (as
// lines a shell can source) and shows what it holds at GET /paysim/state.
// Its situation flags (--refuse-order, --binding, --wechat-refuse, ...)
// put the providers in the situations of the job's runbook, at start or,
// with `paysim ctl`, while it runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
	settlesql "github.com/settlekit/settle/sql"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "paysim: "+strings.TrimPrefix(err.Error(), "paysim: ")) // internal/paysim's errors name it already
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "ctl" {
		return ctl(ctx, args[1:], stdout)
	}
	fs := flag.NewFlagSet("paysim", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { usage(fs) }
	dir := fs.String("dir", "paysim-data", "directory for keys, known_hosts and the SFTP root; the keys and serials made on the first start are kept there")
	httpAddr := fs.String("http-addr", "127.0.0.1:8700", "HTTP listen address: the Infinia, Pay Protocol and WeChat Pay APIs and /paysim/state")
	sftpAddr := fs.String("sftp-addr", "127.0.0.1:8722", "SFTP listen address")
	faults := fs.String("faults", "", `fault rules, e.g. "revenue-sharing/request:lost@1;*:5xx~0.05;upload:disconnect@2,bytes=4096"`)
	faultsFile := fs.String("faults-file", "", "file of fault rules, one per line")
	seedN := fs.Uint64("seed", 1, "seed of the probabilistic faults")
	polls := fs.Int("polls", 2, "status polls that answer PROCESSING before the final status (with a timing model: 0 unless given)")
	sellers := fs.Int("bind-sellers", 50, "bind the seed's sellers 1..N (ACTIVE), as settle seed names them")
	platformDB := fs.String("platform-db", "", "with --date: create the providers' side of the orders settle seed wrote there: the Pay Protocol payments (in every status) and the WeChat Pay transactions")
	date := fs.String("date", "", "business date of --platform-db's orders, YYYY-MM-DD; several separated by commas (a trial of consecutive nights against one paysim, which keeps what it paid only while it runs)")
	tz := fs.String("tz", "Asia/Shanghai", "time zone of --date (with --platform-db, exported as SETTLE_TZ)")
	timingName := fs.String("timing", "none", "timing model: none (instant answers) or internet (latency 80ms, upload status 20s, revenue share 30s, distribution 10s, Infinia and Pay Protocol 50 requests/s); the flags below override it, and any of --latency and the delays alone selects internet")
	latency := fs.Duration("latency", 0, "wait before every API answer (default from --timing)")
	uploadDelay := fs.Duration("upload-delay", 0, "an Infinia trade file's upload status is final this long after the file arrived (default from --timing)")
	shareDelay := fs.Duration("revenue-share-delay", 0, "an Infinia revenue share is final this long after it was accepted (default from --timing)")
	distDelay := fs.Duration("distribution-delay", 0, "a WeChat Pay distribution or unfreeze is FINISHED this long after it was accepted (default from --timing)")
	infQPS := fs.Float64("infinia-qps", 0, "Infinia's rate limit in requests/s, HTTP 429 beyond it; 0: unlimited (default from --timing)")
	ppQPS := fs.Float64("payprotocol-qps", 0, "Pay Protocol's rate limit in requests/s, HTTP 429 beyond it; 0: unlimited (default from --timing)")
	wxQPS := fs.Int("wechat-qps", 300, "WeChat Pay's rate limit per service provider in requests/s, 429 FREQUENCY_LIMITED beyond it; negative: unlimited")
	wxSubQPS := fs.Int("wechat-sub-merchant-qps", 30, "WeChat Pay's rate limit per sub-merchant in requests/s; negative: unlimited")
	wxFee := fs.Int("wechat-fee-bps", 0, "WeChat Pay's fee in basis points of a transaction, 0 to 9999: it holds the amount less the fee to distribute, as published (settle takes it within --wechat-max-fee-bps)")
	infMemory := fs.Duration("infinia-memory", 0, "simulated: Infinia forgets a revenue share's requestNo this long after it took it (its status query answers not found; sent again, it pays again); 0: never")
	wxMemory := fs.Duration("wechat-memory", 0, "simulated: WeChat Pay forgets a distribution's or unfreeze's out_order_no this long after it took it (its order query answers not found; sent again, it is a new request); 0: never")
	var settings paysim.Settings
	settings.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["timing"] && (set["latency"] || set["upload-delay"] || set["revenue-share-delay"] || set["distribution-delay"]) {
		*timingName = "internet" // a timing flag alone turns the model on, the rest at its defaults
	}
	timing, err := paysim.TimingPreset(*timingName)
	if err != nil {
		return fmt.Errorf("--timing: %w", err)
	}
	for name, d := range map[string]struct {
		to   *time.Duration
		from time.Duration
	}{"latency": {&timing.Latency, *latency}, "upload-delay": {&timing.UploadDelay, *uploadDelay},
		"revenue-share-delay": {&timing.RevenueShareDelay, *shareDelay}, "distribution-delay": {&timing.DistributionDelay, *distDelay}} {
		if set[name] {
			if d.from < 0 {
				return fmt.Errorf("--%s: want a duration >= 0", name)
			}
			*d.to = d.from
		}
	}
	if set["infinia-qps"] {
		timing.InfiniaQPS = *infQPS
	}
	if set["payprotocol-qps"] {
		timing.PayProtocolQPS = *ppQPS
	}
	timing.WeChatQPS, timing.WeChatSubMerchantQPS = *wxQPS, *wxSubQPS
	if timing.WeChatQPS == 0 || timing.WeChatSubMerchantQPS == 0 {
		return errors.New("--wechat-qps and --wechat-sub-merchant-qps: want a positive rate, or negative for unlimited")
	}
	if *wxFee < 0 || *wxFee >= 10000 {
		return fmt.Errorf("--wechat-fee-bps: want basis points from 0 to 9999, got %d", *wxFee)
	}
	timed := timing.On()
	if timed && !set["polls"] {
		*polls = -1 // the delays decide when a status is final
	}
	if *infMemory < 0 || *wxMemory < 0 {
		return errors.New("--infinia-memory and --wechat-memory: want a duration >= 0 (0: never forgets)")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if (*platformDB == "") != (*date == "") {
		return errors.New("--platform-db and --date go together: give both (to create the day's payments and transactions) or neither")
	}
	spec := *faults
	if *faultsFile != "" {
		b, err := os.ReadFile(*faultsFile)
		if err != nil {
			return err
		}
		spec += "\n" + string(b)
	}
	rules, err := fault.ParseRules(spec)
	if err != nil {
		return err
	}
	sim, err := paysim.Start(paysim.Options{Dir: *dir, Faults: fault.New(*seedN, rules...), Polls: *polls,
		HTTPAddr: *httpAddr, SFTPAddr: *sftpAddr, Timing: timing, WeChatFeeBps: *wxFee,
		InfiniaMemory: *infMemory, WeChatMemory: *wxMemory})
	if err != nil {
		return err
	}
	defer sim.Close()
	for i := 1; i <= *sellers; i++ {
		sim.Infinia.SetBinding(seed.InfiniaID(i), "ACTIVE")
	}
	for _, cur := range paysim.Currencies {
		sim.Infinia.SetBalance(cur, paysim.DefaultBalance)
	}
	if *platformDB != "" {
		for _, d := range strings.Split(*date, ",") {
			if err := seedAndSay(ctx, sim, *platformDB, strings.TrimSpace(d), *tz, stdout); err != nil {
				return err
			}
		}
	}
	// After the day is seeded: the WeChat and Pay Protocol settings name
	// its transactions and payments.
	if err := sim.Apply(settings); err != nil {
		return err
	}
	for _, st := range settings {
		fmt.Fprintln(stdout, situationLine(st.Name, st.Value))
	}
	fmt.Fprintf(stdout, "# paysim: simulated Infinia Pay (API %s, SFTP %s), Pay Protocol and WeChat Pay; %d fault rules; Ctrl-C to stop\n",
		sim.Config.InfiniaURL, sim.Config.SFTPAddr, len(rules))
	if timed {
		fmt.Fprintf(stdout, "# timing: latency %v, upload status %v, revenue share %v, distribution %v; limits/s: Infinia %s, Pay Protocol %s, WeChat Pay %d (%d per sub-merchant)\n",
			timing.Latency, timing.UploadDelay, timing.RevenueShareDelay, timing.DistributionDelay, qps(timing.InfiniaQPS), qps(timing.PayProtocolQPS),
			timing.WeChatQPS, timing.WeChatSubMerchantQPS)
	}
	fmt.Fprintf(stdout, "# what it holds (balances, revenue shares, files, distributions, payments, requests and 429s): curl -s %s\n", sim.StateURL())
	fmt.Fprintf(stdout, "# change the situations while it runs (from this machine): paysim ctl --url %s --refuse-order ORDER=REASON ...\n",
		strings.TrimSuffix(sim.ControlURL(), paysim.ControlPath))
	var env []string
	if *platformDB != "" {
		// The zone of the window whose orders it created: settle must
		// read the same one (its default is Asia/Shanghai's).
		env = append(env, "SETTLE_TZ="+*tz)
	}
	// One write, SETTLE_WECHAT_RECEIVER_NAME's export last: the README's
	// trial and the scripts source the output once that line shows, and
	// SETTLE_TZ printed after it, a line at a time, could be missed (a
	// trial in another zone then read Asia/Shanghai's window).
	env = append(env, sim.Config.Env()...)
	fmt.Fprint(stdout, "# the job's configuration (save this output and source it):\n"+strings.Join(exports(env), "\n")+"\n")
	<-ctx.Done()
	return nil
}

func qps(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprint(r)
}

// seedAndSay creates the providers' side of one seeded date and says
// what it created.
func seedAndSay(ctx context.Context, sim *paysim.Sim, url, date, tz string, stdout io.Writer) error {
	day, err := seedDay(ctx, sim, url, date, tz)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# created %d Pay Protocol payments and %d WeChat Pay transactions for the orders of %s\n", day.PayProtocol, day.WeChat, date)
	if len(day.Funded) > 0 {
		names := make([]string, len(day.Funded))
		for i, c := range day.Funded {
			names[i] = string(c)
		}
		fmt.Fprintf(stdout, "# the day's orders are in %s too: the platform's Infinia balance is %d minor units in each\n", strings.Join(names, ", "), paysim.DefaultBalance)
	}
	if len(day.Duplicates) > 0 {
		fmt.Fprintf(stdout, "# %d provider transaction ids are shared by several orders (created once; settle rejects the duplicates): %s\n",
			len(day.Duplicates), strings.Join(day.Duplicates, " "))
	}
	return nil
}

// seedDay creates the providers' side of a seeded day.
func seedDay(ctx context.Context, sim *paysim.Sim, url, date, tz string) (paysim.Day, error) {
	d, err := pipeline.ParseDate(date)
	if err != nil {
		return paysim.Day{}, fmt.Errorf("--date: %w", err)
	}
	// As settle's --tz: "" is UTC to time.LoadLocation and Local the
	// machine's zone, either a window settle would not read.
	if tz == "" || tz == "Local" {
		return paysim.Day{}, fmt.Errorf("--tz %q: name the business day's IANA time zone (Asia/Shanghai, UTC)", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return paysim.Day{}, fmt.Errorf("--tz: %w", err)
	}
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return paysim.Day{}, err
	}
	defer db.Close()
	return sim.SeedDay(ctx, db, settlesql.SourceQuery, pipeline.WindowOf(d, loc))
}

// exports renders KEY=VALUE pairs as export lines a POSIX shell can
// source: a value with anything but plain characters is single-quoted.
func exports(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, "export "+k+"="+shellQuote(v))
	}
	return out
}

// situationLine is the comment saying a situation flag was applied: one
// line, however the value is written (a reason with a newline, given to
// --refuse-order, ended the comment, and the rest of the output, saved
// and sourced as it says, was no longer shell: found by a trial).
func situationLine(name, value string) string {
	v := shellQuote(value)
	if strings.ContainsAny(value, "\n\r") {
		v = strconv.Quote(value)
	}
	return "# situation: --" + name + " " + v
}

var plain = regexp.MustCompile(`^[A-Za-z0-9_./:@%+,=-]+$`)

func shellQuote(v string) string {
	if plain.MatchString(v) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// ctl sends situation settings to a running paysim.
func ctl(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("paysim ctl", flag.ContinueOnError)
	fs.SetOutput(stdout)
	url := fs.String("url", "http://127.0.0.1:8700", "the running paysim's HTTP address (its --http-addr); it takes settings from loopback peers only")
	var settings paysim.Settings
	settings.AddFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: paysim ctl [--url URL] SITUATION-FLAGS...")
		fmt.Fprintln(stdout, "Changes the situations of a running paysim (a simulator of the payment providers, not the real ones),")
		fmt.Fprintln(stdout, "with the situation flags paysim takes at start, applied in the order given.")
		usageOf(fs, func(string) bool { return true })
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("ctl: unexpected argument %q (see paysim ctl --help)", fs.Arg(0))
	}
	if len(settings) == 0 {
		return errors.New("ctl: no situation flags given (see paysim ctl --help)")
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	msg, err := paysim.PostSettings(ctx, hc, *url, settings)
	if err != nil {
		return fmt.Errorf("ctl: %w", err)
	}
	fmt.Fprintln(stdout, msg)
	return nil
}

// usage prints the flags with two dashes, as settle's: Go's flag package
// accepts -flag and --flag alike.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "Usage: paysim [flags]")
	fmt.Fprintln(w, "       paysim ctl [--url URL] SITUATION-FLAGS...")
	fmt.Fprintln(w, "Runs SIMULATED payment providers - stateful fakes of Infinia Pay (API and SFTP), WeChat Pay Global and")
	fmt.Fprintln(w, "Pay Protocol on loopback ports, for trying and rehearsing settle; they are not the real services and no")
	fmt.Fprintln(w, "money moves. Prints the environment settle needs to reach them. The situation flags put the simulated")
	fmt.Fprintln(w, "providers in the situations of settle's runbook; paysim ctl changes them while paysim runs.")
	fmt.Fprintln(w, "Flags:")
	usageOf(fs, func(name string) bool { return !isSituation(name) })
	fmt.Fprintln(w, "Situation flags (repeatable, applied in order, after --bind-sellers and the day's seeding):")
	usageOf(fs, isSituation)
}

func isSituation(name string) bool {
	for _, c := range paysim.Controls {
		if c.Name == name {
			return true
		}
	}
	return false
}

// usageOf prints the flags of fs that show says to.
func usageOf(fs *flag.FlagSet, show func(string) bool) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		if !show(f.Name) {
			return
		}
		name, use := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(use, "\n", "\n    \t")
		switch {
		case f.DefValue == "" || f.DefValue == "0" || f.DefValue == "0s" || f.DefValue == "false":
		case name == "string":
			line += fmt.Sprintf(" (default %q)", f.DefValue)
		default:
			line += " (default " + f.DefValue + ")"
		}
		fmt.Fprintln(w, line)
	})
}
