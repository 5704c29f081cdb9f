package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/internal/pgtest"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/seed"
)

func TestPaysimServesAndPrintsTheJobsConfiguration(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncWriter{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-dir", t.TempDir(), "-http-addr", "127.0.0.1:0", "-sftp-addr", "127.0.0.1:0", "-faults", "*:5xx~0.1"}, out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "SETTLE_SFTP_KNOWN_HOSTS") {
		if time.Now().After(deadline) {
			t.Fatalf("no configuration printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var url string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "export SETTLE_INFINIA_URL="); ok {
			url = v
		}
	}
	resp, err := http.Post(url+"v1/balance/query", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("the API does not answer: %v", err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-faults", "nonsense"}, &bytes.Buffer{}); err == nil {
		t.Fatal("a bad fault spec must be refused")
	}
}

// syncWriter is a buffer the test reads while paysim writes it; it keeps
// each write, to tell what a reader of the file could see between two.
type syncWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes []string
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return w.b.Write(p)
}

// writeWith returns the first write that holds s, "" when none does.
func (w *syncWriter) writeWith(s string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.writes {
		if strings.Contains(p, s) {
			return p
		}
	}
	return ""
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestPaysimCreatesTheProvidersSideOfASeededDay: with --platform-db and
// --date paysim creates the day's Pay Protocol payments and WeChat
// transactions, survives a duplicated Pay Protocol order (a bad row) by
// naming it, and shows what it holds at its state endpoint.
func TestPaysimCreatesTheProvidersSideOfASeededDay(t *testing.T) {
	url := pgtest.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	if _, err := seed.Generate(context.Background(), db, seed.Options{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Location: sh,
		Orders: 200, Sellers: 5, Seed: 1, BadRows: 9}); err != nil {
		t.Fatal(err)
	}
	// The seed's duplicated order, as a Pay Protocol one.
	var dupTxn string
	if err := db.Get(&dupTxn, `WITH o AS (SELECT * FROM orders WHERE provider = 'payprotocol'
			AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08' ORDER BY order_no LIMIT 1)
		INSERT INTO orders SELECT * FROM o RETURNING provider_txn_id`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncWriter{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0",
			"--platform-db", url, "--date", "2026-11-23", "--balance", "5000"}, out)
	}()
	waitPrinted(t, out, done, "export SETTLE_PAYPROTOCOL_URL")
	defer func() { cancel(); <-done }()
	var pp, wx int
	var stateURL string
	for _, line := range strings.Split(out.String(), "\n") {
		fmt.Sscanf(line, "# created %d Pay Protocol payments and %d WeChat Pay transactions", &pp, &wx)
		if _, u, ok := strings.Cut(line, "curl -s "); ok {
			stateURL = u
		}
	}
	if pp == 0 || wx == 0 {
		t.Fatalf("payments %d, transactions %d: want both:\n%s", pp, wx, out.String())
	}
	if !strings.Contains(out.String(), "shared by several orders") || !strings.Contains(out.String(), dupTxn) {
		t.Fatalf("the duplicated Pay Protocol order %s is not reported:\n%s", dupTxn, out.String())
	}
	var want int
	db.Get(&want, `SELECT count(DISTINCT provider_txn_id) FROM orders WHERE provider = 'wechatpay'
		AND confirmed_at >= '2026-11-23 00:00+08' AND confirmed_at < '2026-11-24 00:00+08' AND amount_minor > 0 AND currency IN ('CNY', 'HKD')`)
	if wx > want || wx < want-2 {
		t.Fatalf("%d WeChat transactions for %d WeChat orders of the day", wx, want)
	}
	resp, err := http.Get(stateURL)
	if err != nil {
		t.Fatalf("state endpoint %q: %v", stateURL, err)
	}
	defer resp.Body.Close()
	var st paysim.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.PayProtocol.Payments) != pp || len(st.WeChat.Transactions) != wx || st.Infinia.Balances["USD"] != 5000 ||
		st.WeChat.Transactions[0].FrozenMinor <= 0 {
		t.Fatalf("state: %d payments, %d transactions, balances %v", len(st.PayProtocol.Payments), len(st.WeChat.Transactions), st.Infinia.Balances)
	}
}

func TestPaysimFlags(t *testing.T) {
	var help bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(help.String(), "  --platform-db string") || strings.Contains(help.String(), "\n  -platform-db") {
		t.Fatalf("help shows single dashes:\n%s", help.String())
	}
	for _, flag := range []string{"--infinia-memory", "--wechat-memory"} {
		if !strings.Contains(help.String(), "  "+flag+" duration") {
			t.Errorf("help does not show %s", flag)
		}
		err := run(context.Background(), []string{flag, "-1s", "--dir", t.TempDir()}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s -1s: %v, want it refused", flag, err)
		}
	}
	for _, args := range [][]string{{"--date", "2026-11-23"}, {"--platform-db", "postgres://x"}} {
		err := run(context.Background(), append(args, "--dir", t.TempDir()), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "go together") {
			t.Errorf("%v: %v, want an error", args, err)
		}
	}
}

// TestPaysimExportsCanBeSourced: the printed configuration, saved and
// sourced by a POSIX shell, sets every value as printed, spaces and all.
func TestPaysimExportsCanBeSourced(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"SETTLE_WECHAT_RECEIVER_NAME=Demo Marketplace Ltd", "SETTLE_X=it's $HOME `id` \\ \"q\"", "SETTLE_URL=http://127.0.0.1:8700/api/"}
	file := filepath.Join(t.TempDir(), "env.sh")
	if err := os.WriteFile(file, []byte(strings.Join(exports(env), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(sh, "-c", `. "$0" && printf '%s\n' "$SETTLE_WECHAT_RECEIVER_NAME" "$SETTLE_X" "$SETTLE_URL"`, file).CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing the exports: %v\n%s", err, got)
	}
	want := "Demo Marketplace Ltd\nit's $HOME `id` \\ \"q\"\nhttp://127.0.0.1:8700/api/\n"
	if string(got) != want {
		t.Fatalf("sourced values:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(strings.Join(exports(env), "\n"), "export SETTLE_WECHAT_RECEIVER_NAME='Demo Marketplace Ltd'") {
		t.Fatalf("exports: %v", exports(env))
	}
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestPaysimSituationFlagsAndCtl: the situation flags are applied at
// start and said so; paysim ctl changes them while paysim runs, through
// its control endpoint; what cannot be applied is refused, at start and
// by ctl.
func TestPaysimSituationFlagsAndCtl(t *testing.T) {
	stateURL := startPaysim(t, "--balance", "5000", "--balance", "KWD=1", "--binding", "INF00000003=REJECTED", "--binding", "INF00000004=NONE")
	state := func() paysim.State {
		t.Helper()
		resp, err := http.Get(stateURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st paysim.State
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if b := state().Infinia.Balances; b["USD"] != 5000 || b["KWD"] != 1 {
		t.Fatalf("balances %v: want 5000, and KWD 1", b)
	}
	base := strings.TrimSuffix(stateURL, "/paysim/state")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"ctl", "--url", base, "--balance", "KWD=100000", "--refuse-order", "O1=product type not allowed"}, &out); err != nil ||
		!strings.Contains(out.String(), "applied 2 settings") {
		t.Fatalf("ctl: %v\n%s", err, out.String())
	}
	if b := state().Infinia.Balances; b["KWD"] != 100000 || b["USD"] != 5000 {
		t.Fatalf("balances after ctl %v: want KWD 100000, USD 5000", b)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ctl", "--url", base, "--payprotocol-status", "PPO-NONE=pending"}, "no payment PPO-NONE at Pay Protocol"},
		{[]string{"ctl", "--url", base, "--wechat-refuse", "4200-NONE=INVALID_REQUEST"}, "WeChat Pay holds no transaction 4200-NONE"},
		{[]string{"ctl", "--url", base, "--binding", "INF00000001=SLEEPY"}, "want ACTIVE, PENDING, REJECTED, FROZEN or NONE"},
		{[]string{"ctl", "--url", base}, "no situation flags"},
		{[]string{"--dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0", "--wechat-refund", "4200-NONE=100"}, "WeChat Pay holds no transaction 4200-NONE"},
		{[]string{"--balance", "XXX=1"}, `unknown currency "XXX"`},
	} {
		err := run(context.Background(), c.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	var help bytes.Buffer
	run(context.Background(), []string{"--help"}, &help)
	if !strings.Contains(help.String(), "SIMULATED payment providers") || !strings.Contains(help.String(), "not the real services") ||
		!strings.Contains(help.String(), "Situation flags") || !strings.Contains(help.String(), "  --refuse-order ORDER=REASON") {
		t.Fatalf("help:\n%s", help.String())
	}
}

// TestPaysimFundsTheDaysOtherCurrencies: a trial of another marketplace,
// its orders paid through Infinia in EGP, against a paysim started on its
// day: the platform's Infinia balance in EGP is the default, as in CNY
// (it was 0, every payout held as short, while the help said "every
// currency"), and --balance without a currency sets it too.
func TestPaysimFundsTheDaysOtherCurrencies(t *testing.T) {
	url := pgtest.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	if _, err := seed.Generate(context.Background(), db, seed.Options{Date: pipeline.Date{Year: 2026, Month: 11, Day: 23}, Location: sh,
		Orders: 40, Sellers: 3, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE orders SET currency = 'EGP' WHERE provider <> 'wechatpay'`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want int64
	}{{nil, paysim.DefaultBalance}, {[]string{"--balance", "7000"}, 7000}} {
		ctx, cancel := context.WithCancel(context.Background())
		out := &syncWriter{}
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, append([]string{"--dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0",
				"--platform-db", url, "--date", "2026-11-23"}, tc.args...), out)
		}()
		waitPrinted(t, out, done, "export SETTLE_PAYPROTOCOL_URL")
		var stateURL string
		for _, line := range strings.Split(out.String(), "\n") {
			if _, u, ok := strings.Cut(line, "curl -s "); ok {
				stateURL = u
			}
		}
		resp, err := http.Get(stateURL)
		if err != nil {
			t.Fatalf("state endpoint %q: %v", stateURL, err)
		}
		var st paysim.State
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		cancel()
		<-done
		if err != nil {
			t.Fatal(err)
		}
		if st.Infinia.Balances["EGP"] != tc.want || st.Infinia.Balances["USD"] != tc.want {
			t.Errorf("%v: balances %v: want %d in EGP as in USD", tc.args, st.Infinia.Balances, tc.want)
		}
		if !strings.Contains(out.String(), "# the day's orders are in EGP too") {
			t.Errorf("%v: the funded currency is not named:\n%s", tc.args, out.String())
		}
	}
}

// TestPaysimExportsTheZoneOfTheDayItCreated: paysim creates the
// providers' side of the orders of --date's window in --tz, and printed
// no SETTLE_TZ: a trial day seeded in another zone (settle seed --tz
// America/New_York) and sourced as the README says was run in settle's
// default zone, Asia/Shanghai, whose window holds orders paysim never
// created (unknown to Pay Protocol and WeChat Pay) and misses some it
// did. paysim exports the zone of its window; an empty --tz (UTC to
// time.LoadLocation) or Local (the machine's zone) is refused, as settle
// refuses them.
func TestPaysimExportsTheZoneOfTheDayItCreated(t *testing.T) {
	url := pgtest.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ny, _ := time.LoadLocation("America/New_York")
	d := pipeline.Date{Year: 2026, Month: 11, Day: 1} // 25 hours in New York
	if _, err := seed.Generate(context.Background(), db, seed.Options{Date: d, Location: ny, Orders: 30, Sellers: 3, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tz := range []string{"", "Local"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // taken, paysim runs until stopped
		err := run(ctx, []string{"--dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0",
			"--platform-db", url, "--date", d.String(), "--tz", tz}, &bytes.Buffer{})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "--tz") {
			t.Fatalf("--tz %q: %v, want refused", tz, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncWriter{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0",
			"--platform-db", url, "--date", d.String(), "--tz", "America/New_York"}, out)
	}()
	defer func() { cancel(); <-done }()
	waitPrinted(t, out, done, "export SETTLE_WECHAT_RECEIVER_NAME")
	if !strings.Contains(out.String(), "\nexport SETTLE_TZ=America/New_York\n") {
		t.Fatalf("the configuration does not name the zone of the day paysim created:\n%s", out.String())
	}
	// The README's trial, monthtrial.py, benchday and crashcampaign source
	// the output once it shows SETTLE_WECHAT_RECEIVER_NAME: that export is
	// the last, and the configuration arrives in one write, so that none
	// reads it without SETTLE_TZ (printed after it, a trial in another
	// zone could source the file between the two and read the default
	// zone's window, not the one paysim created).
	var exports []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "export ") {
			exports = append(exports, line)
		}
	}
	if last := exports[len(exports)-1]; !strings.HasPrefix(last, "export SETTLE_WECHAT_RECEIVER_NAME=") {
		t.Fatalf("the last export is %q, want SETTLE_WECHAT_RECEIVER_NAME's, the one the trials wait for:\n%s", last, out.String())
	}
	if w := out.writeWith("export SETTLE_WECHAT_RECEIVER_NAME="); !strings.Contains(w, "export SETTLE_TZ=") || !strings.Contains(w, "export SETTLE_INFINIA_URL=") {
		t.Fatalf("the configuration came in several writes; the one with SETTLE_WECHAT_RECEIVER_NAME:\n%s", w)
	}
}

// waitPrinted waits, up to 20 s, until paysim (its run's end on done) has
// printed marker in out; it fails t if paysim stopped or never printed it.
func waitPrinted(t *testing.T, out *syncWriter, done <-chan error, marker string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), marker) {
		select {
		case err := <-done:
			t.Fatalf("paysim stopped: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no configuration printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPaysimSituationLinesCanBeSourced: paysim's output is saved and
// sourced (README, "Settle a day against paysim"); a situation whose value
// holds a newline (a --refuse-order reason) is said in one comment line,
// so that the exports after it are still read.
func TestPaysimSituationLinesCanBeSourced(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{situationLine("refuse-order", "O1=first line\nsecond 'line'\r"), situationLine("binding", "INF1=ACTIVE")}
	lines = append(lines, exports([]string{"SETTLE_X=it's set"})...)
	file := filepath.Join(t.TempDir(), "env.sh")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(sh, "-c", `. "$0" && printf '%s\n' "$SETTLE_X"`, file).CombinedOutput()
	if err != nil || string(got) != "it's set\n" {
		t.Fatalf("sourcing %q: %v\n%s", lines, err, got)
	}
	if l := situationLine("binding", "INF1=ACTIVE"); l != "# situation: --binding INF1=ACTIVE" {
		t.Fatalf("situation line %q", l)
	}
}

// A trial of consecutive nights runs against one paysim (a restarted one
// no longer knows what it paid): --date takes several dates and creates
// the providers' side of each.
func TestPaysimCreatesTheProvidersSideOfSeveralDates(t *testing.T) {
	url := pgtest.URL(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sh, _ := time.LoadLocation("Asia/Shanghai")
	for i, d := range []int{23, 24} {
		if _, err := seed.Generate(context.Background(), db, seed.Options{Date: pipeline.Date{Year: 2026, Month: 11, Day: d}, Location: sh,
			Orders: 60, Sellers: 5, Seed: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncWriter{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sftp-addr", "127.0.0.1:0",
			"--platform-db", url, "--date", "2026-11-23,2026-11-24"}, out)
	}()
	waitPrinted(t, out, done, "export SETTLE_PAYPROTOCOL_URL")
	defer func() { cancel(); <-done }()
	var stateURL string
	created := map[string][2]int{}
	for _, line := range strings.Split(out.String(), "\n") {
		var pp, wx int
		var date string
		if n, _ := fmt.Sscanf(line, "# created %d Pay Protocol payments and %d WeChat Pay transactions for the orders of %s", &pp, &wx, &date); n == 3 {
			created[date] = [2]int{pp, wx}
		}
		if _, u, ok := strings.Cut(line, "curl -s "); ok {
			stateURL = u
		}
	}
	if len(created) != 2 || created["2026-11-23"][1] == 0 || created["2026-11-24"][1] == 0 {
		t.Fatalf("created per date %v: want both dates' transactions:\n%s", created, out.String())
	}
	resp, err := http.Get(stateURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st paysim.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.WeChat.Transactions) != created["2026-11-23"][1]+created["2026-11-24"][1] ||
		len(st.PayProtocol.Payments) != created["2026-11-23"][0]+created["2026-11-24"][0] {
		t.Fatalf("state: %d WeChat transactions, %d payments; created per date %v", len(st.WeChat.Transactions), len(st.PayProtocol.Payments), created)
	}
}
