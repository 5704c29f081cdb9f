package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the image may have no zoneinfo: embed it

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	settlesql "github.com/settlekit/settle/sql"
	"github.com/settlekit/settle/transform"
)

// config holds what the flags and the environment say, and the process's
// streams. Commands fill it from their flags; nothing else reads flags.
type config struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	now            func() time.Time
	log            *slog.Logger
	json           bool      // log lines are JSON (not a terminal), not text
	live           io.Writer // a terminal, for live progress lines; nil elsewhere
	// dates are the business dates the command works on (settle run's),
	// for the last log line of a failure (logFailure); nil for the others.
	dates []pipeline.Date
	// shardName is the shard settle run works on when it is one of a
	// sharded date's ("1/4"), for the same line: the Indexed Job's pods
	// all run the same date. "" for a whole date.
	shardName string
	// onCut reports the metrics of a stop cut short (reportCut); set by
	// settle run, guarded by mu.
	mu    sync.Mutex
	onCut func(ctx context.Context, err error)
	// ledgerURL and ledgerSchema are the ledger's, once openLedger was
	// called: whyReadOnly asks that server after a refused write.
	ledgerURL, ledgerSchema string
	// args is the command line settle was given (without the program's
	// name), to tell a flag given there from one its environment
	// variable set (onCommandLine).
	args []string
}

// logFormatEnv names the log format: json or text.
const logFormatEnv = "SETTLE_LOG_FORMAT"

// logger is the run's logger: JSON on stdout when stdout is not a terminal
// (a Kubernetes pod), readable text on a terminal, or as SETTLE_LOG_FORMAT
// says (json | text). Writers that are not files (tests) get text.
func (c *config) logger() *slog.Logger {
	if c.log != nil {
		return c.log
	}
	format := c.getenv(logFormatEnv)
	terminal := false
	if f, ok := c.stdout.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			terminal = st.Mode()&os.ModeCharDevice != 0
		}
		if format == "" && !terminal {
			format = "json"
		}
	}
	if terminal {
		c.live = c.stderr
	}
	// JSON escapes C0 controls but writes DEL and C1 as they are: a
	// provider's words in a log line (a refusal's reason) reached a
	// terminal reading the pod's log as a control sequence.
	out := controlSafe(c.stdout)
	if format == "json" {
		c.json = true
		c.log = slog.New(jsonLogHandler(out))
	} else {
		c.log = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // a terminal has its own clock
			}
			return a
		}}))
	}
	return c.log
}

func (c *config) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// Flag names shared by several commands.
const (
	flagDatabaseURL     = "database-url"
	flagDatabaseURLFile = "database-url-file"
	flagSourceURL       = "source-database-url"
	flagSourceURLFile   = "source-database-url-file"
	flagSchema          = "schema"
	flagTZ              = "tz"
	flagDate            = "date"
	flagRules           = "rules"
	flagSourceQuery     = "source-query"
	flagOut             = "out"
	flagShard           = "shard"
	flagSellersQuery    = "sellers-query"
	flagLateRefundsQ    = "late-refunds-query"
	flagMinPayout       = "min-payout"
	flagRecheckDays     = "recheck-days"
	flagWatchDays       = "rejected-watch-days"
	flagReconcileAll    = "reconcile-all"
	flagLateOrders      = "late-orders"
	flagReextract       = "reextract"
	flagNewTZ           = "new-tz"
	flagNewAccount      = "new-account"
	flagNewSource       = "new-source"
	flagSendPastMemory  = "send-past-memory"
	flagLockWait        = "lock-wait"
	flagSkipChannel     = "skip-channel"
)

// flagSourceStandbyOfPrimary tells settle run the platform's database, if
// a hot standby, streams straight from the primary (extract.Source's
// StandbyOfPrimary).
const flagSourceStandbyOfPrimary = "source-standby-of-primary"

func databaseFlags() []cli.Flag {
	return append(ledgerFlags("PostgreSQL URL of the job's ledger (and, unless --source-database-url, of the platform); must name its sslmode"),
		&cli.StringFlag{Name: flagSourceURL, EnvVars: []string{"SETTLE_SOURCE_DATABASE_URL"},
			Usage: "PostgreSQL URL of the platform's database, for a read-only role (default: --database-url)"},
		&cli.StringFlag{Name: flagSourceURLFile, EnvVars: []string{"SETTLE_SOURCE_DATABASE_URL_FILE"},
			Usage: "read --source-database-url from this file"})
}

// ledgerFlags are the flags of the ledger's database alone, for the
// commands that never read the platform (status, report, resolve,
// migrate): their help listed --source-database-url, which they ignored
// (found by an operator's review).
func ledgerFlags(urlUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagDatabaseURL, EnvVars: []string{"SETTLE_DATABASE_URL"}, Usage: urlUsage},
		&cli.StringFlag{Name: flagDatabaseURLFile, EnvVars: []string{"SETTLE_DATABASE_URL_FILE"},
			Usage: "read --database-url from this file (for a mounted secret)"},
		&cli.StringFlag{Name: flagSchema, EnvVars: []string{"SETTLE_SCHEMA"}, Value: ledger.DefaultSchema,
			Usage: "schema of the job's own tables"},
		&cli.BoolFlag{Name: flagDatabasePlaintext, EnvVars: []string{"SETTLE_DATABASE_ALLOW_PLAINTEXT"},
			Usage: "take a database URL of sslmode disable, allow or prefer to another machine (refused without it: the password and the ledger in plain text)"},
	}
}

// flagDatabasePlaintext lets the database URLs reach another machine
// without TLS (ledger.CheckTLS).
const flagDatabasePlaintext = "database-allow-plaintext"

// checkTLS is ledger.CheckTLS of a database URL given with flag, plain
// text to another machine taken with --database-allow-plaintext.
func checkTLS(c *cli.Context, flag, url string) error {
	err := ledger.CheckTLS(url, c.Bool(flagDatabasePlaintext))
	if err == nil {
		return nil
	}
	var pe *pipeline.Error
	if !errors.As(err, &pe) {
		// An sslrootcert its file system failed to read (EIO, ESTALE):
		// a retry may read it (pipeline.FileError).
		return fmt.Errorf("--%s: %w", flag, err)
	}
	err = pe.Err
	if !errors.Is(err, ledger.ErrPlainText) {
		return pipeline.E(pipeline.KindUsage, "--"+flag, err)
	}
	way := "--" + flagDatabasePlaintext
	if env := flagEnv(c, flagDatabasePlaintext); env != "" {
		way += " (" + env + ")"
	}
	return pipeline.Errorf(pipeline.KindUsage, "--"+flag, "%v, or %s on a network you trust", err, way)
}

// flagEnv is the environment variable of the command's bool flag name,
// "" when it reads none (settle demo reads no environment).
func flagEnv(c *cli.Context, name string) string {
	if c.Command == nil {
		return ""
	}
	for _, f := range c.Command.Flags {
		if b, ok := f.(*cli.BoolFlag); ok && b.Name == name && len(b.EnvVars) > 0 {
			return b.EnvVars[0]
		}
	}
	return ""
}

// ledgerURLUsage is --database-url's help in the commands of the ledger alone.
const ledgerURLUsage = "PostgreSQL URL of the job's ledger; must name its sslmode"

func tzFlag() cli.Flag {
	return &cli.StringFlag{Name: flagTZ, EnvVars: []string{"SETTLE_TZ"}, Value: "Asia/Shanghai",
		Usage: "time zone of business dates: date D is [D 00:00, D+1 00:00) there"}
}

func dateFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: flagDate, EnvVars: []string{"SETTLE_DATE"}, Usage: usage}
}

func outFlag() cli.Flag {
	return &cli.StringFlag{Name: flagOut, EnvVars: []string{"SETTLE_OUT", "SETTLE_REPORTS_DIR"}, Value: "reports",
		Usage: "directory of the reports; a date's go under DIR/YYYY-MM-DD/"}
}

// secret returns the value of flag, or the trimmed contents of the file named
// by fileFlag. Both set is refused: the value won and the file was ignored,
// silently, so that "--database-url-file /secrets/prod" in a shell that
// exports SETTLE_DATABASE_URL (another database's) ran on that other one.
func secret(c *cli.Context, flag, fileFlag string) (string, error) {
	v, path := c.String(flag), c.String(fileFlag)
	if v != "" && path != "" {
		return "", pipeline.Errorf(pipeline.KindUsage, "--"+fileFlag,
			"both --%s (%s) and --%s (%s) are set: give one of the two, settle does not choose between them",
			fileFlag, envName(fileFlag), flag, envName(flag))
	}
	if v != "" {
		return v, nil
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", pipeline.FileError("--"+fileFlag, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// envName is the environment variable of a flag of settle's
// configuration: SETTLE_ and its name in capitals ("database-url":
// SETTLE_DATABASE_URL).
func envName(flag string) string {
	return "SETTLE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func databaseURL(c *cli.Context) (string, error) {
	url, err := secret(c, flagDatabaseURL, flagDatabaseURLFile)
	if err != nil {
		return "", err
	}
	if url == "" {
		return "", pipeline.Errorf(pipeline.KindUsage, "configuration", "no database: set --database-url or SETTLE_DATABASE_URL (settle demo needs none)")
	}
	if err := ledger.CheckDSN(url); err != nil {
		return url, err
	}
	return url, checkTLS(c, flagDatabaseURL, url)
}

func sourceURL(c *cli.Context, fallback string) (string, error) {
	url, err := secret(c, flagSourceURL, flagSourceURLFile)
	if err != nil || url == "" {
		return fallback, err
	}
	if err := ledger.CheckDSN(url); err != nil {
		return url, err
	}
	return url, checkTLS(c, flagSourceURL, url)
}

// location is --tz, an IANA zone. "" (a SETTLE_TZ set empty) is UTC to
// time.LoadLocation and "Local" the machine's zone: either silently moves
// the business day's window (after nights in Asia/Shanghai, a UTC date
// leaves 8 hours of orders in no window), so both are refused.
func location(c *cli.Context) (*time.Location, error) {
	name := c.String(flagTZ)
	if name == "" || name == "Local" {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--tz", "%q: name the business day's IANA time zone (Asia/Shanghai, UTC)", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--tz", err)
	}
	return loc, nil
}

// rateFlag is a requests-per-second flag: 0 is no limit; a negative, NaN
// or infinite rate is refused (it was taken as no limit).
func rateFlag(c *cli.Context, name string) (float64, error) {
	v := c.Float64(name)
	if !(v >= 0) || math.IsInf(v, 0) {
		return 0, pipeline.Errorf(pipeline.KindUsage, "--"+name, "want requests per second, 0 or more (0: no limit), got %v", v)
	}
	return v, nil
}

// sellersQueryFlag is --sellers-query, of run and of sellers bind: both
// read the platform's sellers.
func sellersQueryFlag() cli.Flag {
	return &cli.StringFlag{Name: flagSellersQuery, EnvVars: []string{"SETTLE_SELLERS_QUERY"},
		Usage: "SQL file returning the seller columns for $1 (a text[] of seller ids)"}
}

// businessDate is --date, or yesterday in loc.
func (cfg *config) businessDate(c *cli.Context, loc *time.Location) (pipeline.Date, error) {
	s := c.String(flagDate)
	if s == "" {
		return yesterday(cfg.clock(), loc), nil
	}
	return flagDateValue("--date", s)
}

func requiredDate(c *cli.Context) (pipeline.Date, error) {
	if c.String(flagDate) == "" {
		return pipeline.Date{}, pipeline.Errorf(pipeline.KindUsage, "--date", "required (YYYY-MM-DD)")
	}
	return flagDateValue("--date", c.String(flagDate))
}

// flagDateValue reads a business date given on the command line (flag
// names it): a date of the calendar (pipeline.ParseDate) from minYear on.
// A run of 0001-01-01 failed reading the date before it (year 0, no date
// to PostgreSQL), exit 1, "a retry is safe" (found by an operator's
// trial). A rules file's effective_from may be older ("since always").
func flagDateValue(flag, s string) (pipeline.Date, error) {
	d, err := pipeline.ParseDate(s)
	if err != nil {
		return d, pipeline.E(pipeline.KindUsage, flag, err)
	}
	if d.Year < minYear {
		return d, pipeline.Errorf(pipeline.KindUsage, flag, "date %q: before %d, no business date", s, minYear)
	}
	return d, nil
}

// minYear is the first year of a business date flagDateValue takes.
const minYear = 1900

// openLedger connects to the ledger database; migrate applies the schema.
func (cfg *config) openLedger(ctx context.Context, c *cli.Context, migrate bool) (*ledger.Ledger, error) {
	url, err := databaseURL(c)
	if err != nil {
		return nil, err
	}
	cfg.mu.Lock()
	cfg.ledgerURL, cfg.ledgerSchema = url, c.String(flagSchema)
	cfg.mu.Unlock()
	l, err := ledger.Open(ctx, url, c.String(flagSchema))
	if err != nil {
		return nil, refusedConnection("the ledger's database", err)
	}
	if migrate {
		start := time.Now()
		applied, err := l.Migrate(ctx)
		if err != nil {
			l.Close()
			return nil, err
		}
		if len(applied) > 0 {
			// A command that migrates on its way (a nightly run on a
			// ledger no one ran "settle migrate" on at the deploy) says
			// so: some migrations hold items for minutes, and the
			// run's log showed that time nowhere.
			cfg.logger().Info("migrated the ledger", "schema", l.Schema(), "applied", strings.Join(applied, ","),
				"took", time.Since(start).Round(time.Millisecond))
		}
		if len(applied) > 0 && releaseAfterMigrate {
			ledger.ReleaseParseBuffers()
		}
	}
	return l, nil
}

// whyReadOnly returns err, a write the ledger's database refused as
// read-only (readOnlyRefused, of kind KindFailed; any other err is
// returned as it is), marked with what the ledger's server says now, on a
// connection of its own:
//
//   - in recovery (errLedgerStandby): the URL reaches a standby - a
//     primary demoted in a failover, its address not yet moved to the new
//     one, or a replica's address by mistake. Exit 1: the Job's retry gets
//     past a failover (exit 2 failed the Job for good, and the night was
//     missed until a person ran it).
//   - not in recovery, default_transaction_read_only on for settle's role
//     or database (errReadOnlySetting): a setting no retry changes, exit 2.
//   - a server that takes writes now, or no answer (errReadOnlyPassed): a
//     failure a retry may get past (exit 1).
func (cfg *config) whyReadOnly(ctx context.Context, err error) error {
	cfg.mu.Lock()
	url, schema := cfg.ledgerURL, cfg.ledgerSchema
	cfg.mu.Unlock()
	if !readOnlyRefused(err) || pipeline.KindOf(err) != pipeline.KindFailed || url == "" || errors.Is(err, errLedgerStandby) || errors.Is(err, errReadOnlySetting) || errors.Is(err, errReadOnlyPassed) {
		return err // asked once: the run's action asks, then runAt for every command
	}
	// A refusal of kind KindUsage is no write of the ledger's: the
	// platform database's refusal of the operator's query (a source query
	// that locks rows, FOR UPDATE, or writes, in settle's read-only
	// transaction; extract.refused), which asking the ledger's server
	// would blame on it.
	//
	// Asked even when the run was told to stop (the answer decides
	// whether the Job retries), within a bound of its own: lib/pq bounds
	// by the context the dial alone, not the TLS handshake or the startup
	// that follow, and a server (or a proxy in front of it, in a
	// failover) that takes the connection and never answers held the
	// process past any bound. The probe is left to itself then: no
	// answer, errReadOnlyPassed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readOnlyProbeWait)
	defer cancel()
	type cause struct {
		standby, readOnly bool
		err               error
	}
	asked := make(chan cause, 1)
	go func() {
		l, err := ledger.Open(ctx, url, schema)
		if err != nil {
			asked <- cause{err: err}
			return
		}
		defer l.Close()
		var c cause
		c.standby, c.readOnly, c.err = l.ReadOnlyCause(ctx)
		asked <- c
	}()
	var c cause
	select {
	case c = <-asked:
	case <-ctx.Done():
		c.err = ctx.Err()
	}
	switch {
	case c.err != nil:
		return fmt.Errorf("%w (%w)", err, errReadOnlyPassed)
	case c.standby:
		return fmt.Errorf("%w (%w)", err, errLedgerStandby)
	case c.readOnly:
		return fmt.Errorf("%w (%w)", err, errReadOnlySetting)
	}
	return fmt.Errorf("%w (%w)", err, errReadOnlyPassed)
}

// readOnlyProbeWait bounds whyReadOnly's question to the ledger's server.
const readOnlyProbeWait = 5 * time.Second

// releaseAfterMigrate is set by main: the settle process lets go of the
// buffers a migration parsed with (ledger.ReleaseParseBuffers), so that a
// run's peak memory is its day's. The tests, which run many commands in one
// process beside each other, do not force those collections.
var releaseAfterMigrate bool

// openDB connects to the platform's database. The URL is checked and
// parsed first (ledger.WithParam, which names the connection settle): a
// URL that does not parse is configuration (exit 2), and its error never
// quotes the URL, password and all, as lib/pq's does.
func openDB(ctx context.Context, url string) (*sqlx.DB, error) {
	url, err := ledger.WithParam(url, "application_name", "settle")
	if err != nil {
		return nil, err
	}
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "database URL", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, refusedConnection("the platform database", fmt.Errorf("connect to the platform database: %w", err))
	}
	if err := dbconn.UnderIdleTimeout(ctx, db.DB); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to the platform database: %w", err)
	}
	return db, nil
}

// refusedConnection makes a connection PostgreSQL refused for what the URL
// says - a database that does not exist, a host or role its pg_hba.conf
// does not let in - a configuration error (exit 2): running again cannot
// help. So is a run-time parameter of the connection the server does not
// know (undefined_object at connect): settle sets search_path and, on the
// ledger, jit (PostgreSQL 11 and later), and the URL may add its own (the
// deployment's tcp_keepalives_*); a server older than 11, or a misspelt
// parameter, refused every connection, exit 1, retried until the Job's
// deadline. A refused password stays a failure to retry: a rotated password
// reaches a mounted secret file a little after the server.
func refusedConnection(what string, err error) error {
	var pe *pq.Error
	if errors.As(err, &pe) && (pe.Code == "3D000" || pe.Code == "28000") {
		return pipeline.E(pipeline.KindUsage, what, err)
	}
	// PgBouncer, in any pool mode, refuses a startup parameter it does not
	// track (protocol_violation, "unsupported startup parameter: ...")
	// unless told to ignore it, which drops it (ledger.Open refuses that
	// session): exit 1 was a retry until the Job's deadline, every time
	// refused the same way (found by putting settle behind PgBouncer).
	if errors.As(err, &pe) && pe.Code == "08P01" && strings.Contains(pe.Message, "startup parameter") {
		return pipeline.Errorf(pipeline.KindUsage, what, "%v: a connection pooler (PgBouncer) between settle and PostgreSQL refuses the run-time parameters settle connects with "+
			"(on the ledger's sessions search_path, jit, statement_timeout, idle_in_transaction_session_timeout and default_transaction_isolation; the URL's own, tcp_keepalives_* say), "+
			"and ignoring them would drop them: settle needs PostgreSQL sessions of its own, its date's lock is a session's: "+
			"connect it to PostgreSQL directly (README, \"What settle needs from its databases\")", err)
	}
	if errors.As(err, &pe) && pe.Code == "42704" {
		return pipeline.Errorf(pipeline.KindUsage, what, "%v: the server does not know a run-time parameter of the connection (settle sets search_path, and jit on the ledger's, which needs PostgreSQL 11 or later; the database URL's other parameters are the server's settings, spelt as it spells them)", err)
	}
	return err
}

// sourceQuery returns the text of --source-query, or the built-in query.
func sourceQuery(c *cli.Context) (query, name string, err error) {
	return queryFile(c, flagSourceQuery, settlesql.SourceQuery)
}

// sellersQuery returns the text of --sellers-query, or the built-in query.
func sellersQuery(c *cli.Context) (query, name string, err error) {
	return queryFile(c, flagSellersQuery, settlesql.SellersQuery)
}

// lateRefundsQuery returns the text of --late-refunds-query, or the
// built-in query.
func lateRefundsQuery(c *cli.Context) (query, name string, err error) {
	return queryFile(c, flagLateRefundsQ, settlesql.LateRefundsQuery)
}

// queryFile returns the SQL of the file named by flag, with its path, or
// builtin (name "") when the flag is empty.
func queryFile(c *cli.Context, flag, builtin string) (query, name string, err error) {
	path := c.String(flag)
	if path == "" {
		return builtin, "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", pipeline.FileError("--"+flag, err)
	}
	return string(b), path, nil
}

// loadRules reads and validates the rules file, and checks that a default
// rule covers the date: a bad rules file stops the run before anything.
// A file that cannot be read is configuration (exit 2) but for a failure
// of its file system a retry may get past (pipeline.FileError): an error
// of its reading, which ParseRules returns as a failure (exit 1), is told
// apart the same way (a directory in its place was exit 1, "a retry is
// safe").
func loadRules(path string, d pipeline.Date) (*transform.Rules, error) {
	if path == "" {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--rules", "required: the commission rules file (see README)")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, pipeline.FileError("--rules", err)
	}
	defer f.Close()
	// The rules are named by base name: it goes into every item and report,
	// which must not depend on where the file was mounted.
	rules, err := transform.ParseRules(f, filepath.Base(path))
	if err != nil {
		if pipeline.KindOf(err) == pipeline.KindFailed {
			err = pipeline.FileError("--rules", err)
		}
		return nil, err
	}
	if err := rules.CheckDate(d); err != nil {
		return nil, err
	}
	return rules, nil
}

// classifier validates each row against the known channels, checks its
// seller's account at the provider that pays it, and computes its split
// with the rules; the split starts unverified when its channel's spec says
// so, held when its seller's account cannot be paid to. seller looks a
// seller up.
func classifier(rules *transform.Rules, d pipeline.Date, w pipeline.Window) func(seller func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
	channels := channelSpecs()
	return func(seller func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
		return func(row pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
			o, rej := transform.Validate(row, w, channels)
			if rej != nil {
				return pipeline.Split{}, rej, nil
			}
			s, known, err := seller(o.SellerID)
			if err != nil {
				return pipeline.Split{}, nil, err
			}
			// A seller the platform does not know is bad data: its orders
			// are rejected. One it knows whose account at the provider
			// that pays the order cannot be paid to (none yet, unusable,
			// another seller's too) holds its orders, split as any, until
			// the platform's sellers give it one (pipeline.SellerHoldStage):
			// a seller's onboarding stops neither the others nor the
			// day (the reject gate), and loses it nothing.
			hold := transform.CheckSeller(o, s, known, channels)
			if !known {
				r := pipeline.RejectOf(row, hold)
				return pipeline.Split{}, &r, nil
			}
			sp, rej, err := split(o, row, rules, d)
			if rej == nil && err == nil {
				spec, _ := channels.Spec(o.Channel) // known: Validate checked
				sp.Unverified, sp.TxnOnce, sp.SellerHold = spec.Unverified, spec.TxnRequired, hold
			}
			return sp, rej, err
		}
	}
}

// fromMap looks sellers up in a run's recorded sellers, each marked with
// the others that share an account with it where an account is one
// seller's (its orders paid to it are held), among them and the
// sellers of the date's other shards (others: their rows are not this
// run's to classify).
func fromMap(m, others map[string]pipeline.Seller) func(string) (pipeline.Seller, bool, error) {
	all := m
	if len(others) > 0 {
		all = maps.Clone(m)
		for id, s := range others {
			if _, mine := all[id]; !mine {
				all[id] = s
			}
		}
	}
	channelSpecs().MarkShared(all)
	return func(id string) (pipeline.Seller, bool, error) {
		if _, mine := m[id]; !mine {
			return pipeline.Seller{}, false, nil
		}
		s, ok := all[id]
		return s, ok, nil
	}
}

// errSharedAccount is a pass's classifier error when a seller shares an
// account another seller of the day has where an account is one seller's.
type errSharedAccount struct{ provider, account, first, second string }

func (e errSharedAccount) Error() string {
	return fmt.Sprintf("sellers %s and %s have the same %s account %q (their orders paid to it are held)", e.first, e.second, e.provider, e.account)
}

// sharedWatch is the sellers source of the one-pass extract and transform,
// which meets the day's sellers as its rows come: it notes the first
// seller whose account an earlier seller of the day has too, where an
// account is one seller's, and from then on its classifier fails every row
// (an error), so that the pass leaves the items to the transform stage, which
// sees every seller of the run at once (fromMap) and holds both
// sellers' orders (the earlier one's are already classified here).
type sharedWatch struct {
	pipeline.SellerSource
	// others are the sellers the date's other shards recorded: seen
	// first, so that a seller of this shard with one of their accounts
	// leaves the items to the transform stage too.
	others map[string]pipeline.Seller
	owners *pipeline.AccountOwners
	found  error
}

// Sellers looks sellers up, seeing each.
func (w *sharedWatch) Sellers(ctx context.Context, ids []string, fn func(pipeline.Seller) error) error {
	return w.SellerSource.Sellers(ctx, ids, func(s pipeline.Seller) error {
		if provider, other := w.owners.See(s); other != "" && w.found == nil {
			w.found = errSharedAccount{provider, s.Account(provider), other, s.ID}
		}
		return fn(s)
	})
}

// classifier is the pass's classifier: classify's, failing every row once
// two sellers share an account. A pass starts with it, and with no seller
// seen. Every row fails, not only a row whose seller is looked up: the
// second seller's rows may all be rejected before their seller is looked
// up (no amount, say), and the pass, no lookup failing, kept the items it
// had, the first seller's orders among them, which the transform stage
// rejects (found by a review).
func (w *sharedWatch) classifier(classify func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier) func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
	return func(lookup func(string) (pipeline.Seller, bool, error)) pipeline.Classifier {
		w.owners, w.found = channelSpecs().NewAccountOwners(), nil
		for _, id := range slices.Sorted(maps.Keys(w.others)) {
			w.owners.See(w.others[id])
		}
		inner := classify(lookup)
		return func(row pipeline.SourceRow) (pipeline.Split, *pipeline.Reject, error) {
			if w.found != nil {
				return pipeline.Split{}, nil, w.found
			}
			return inner(row)
		}
	}
}

func split(o pipeline.Order, row pipeline.SourceRow, rules *transform.Rules, d pipeline.Date) (pipeline.Split, *pipeline.Reject, error) {
	s, err := transform.SplitOrder(o, rules, d)
	if err != nil {
		if pipeline.KindOf(err) == pipeline.KindUsage {
			return s, nil, err
		}
		r := pipeline.RejectOf(row, err.Error())
		return s, &r, nil
	}
	return s, nil, nil
}

// configHash identifies what, besides the rules, decides a run's results.
func configHash(tz, query string) string {
	h := sha256.Sum256([]byte(tz + "\x00" + query))
	return hex.EncodeToString(h[:])
}

func reportsFor(c *cli.Context) load.Reports { return load.Reports{Dir: c.String(flagOut)} }

// extractSource builds the pipeline.Source for the platform database: it
// reads a day once the database's clock is dayOverMargin past its end,
// or, unfinished (a dry run), at any time; standbyOfPrimary is
// --source-standby-of-primary.
func (cfg *config) extractSource(db *sqlx.DB, query, name string, unfinished, standbyOfPrimary bool) *extract.Source {
	return &extract.Source{DB: db, Query: query, Name: name, Margin: dayOverMargin, Unfinished: unfinished, Now: cfg.clock, StandbyOfPrimary: standbyOfPrimary}
}

// sellerSource builds the pipeline.SellerSource for the platform database.
// A seller id the query refuses while it takes others is logged to log
// (nil: not) with what the database said: its orders are rejected as of a
// seller the platform does not give, a reason that cannot say it; so is a
// seller the query gives in rows that disagree, with the columns in which
// they do.
func sellerSource(db *sqlx.DB, query, name string, log *slog.Logger) *extract.Sellers {
	s := &extract.Sellers{DB: db, Query: query, Name: name}
	if log != nil {
		s.Refused = func(id string, err error) {
			log.Warn("the sellers query refused a seller id: its orders are rejected as of a seller the platform does not give", "seller", id, "error", err.Error())
		}
		s.Disagree = func(id string, rows int, columns []string) {
			log.Warn("the sellers query gave a seller in rows that disagree: its orders are rejected as of a seller the platform does not give (give one row per seller)",
				"seller", id, "rows", rows, "columns", strings.Join(columns, ","))
		}
	}
	return s
}

func sourceQueryDefault() string { return settlesql.SourceQuery }

// parseMinPayout reads --min-payout: CUR=AMOUNT pairs, comma separated,
// amounts in the currency's major unit ("USD=10.00,JPY=1000").
func parseMinPayout(s string) (map[pipeline.Currency]int64, error) {
	out := map[pipeline.Currency]int64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		cur := pipeline.Currency(strings.TrimSpace(k))
		if !ok || !cur.Valid() {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagMinPayout, "%q: want CUR=AMOUNT with a known currency, e.g. USD=10.00", part)
		}
		if _, dup := out[cur]; dup {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagMinPayout, "%s given twice", cur)
		}
		minor, err := pipeline.ParseMinor(strings.TrimSpace(v), cur)
		if err != nil {
			// Its reason: "JPY=10.5" is non-negative, and has a decimal JPY has not.
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagMinPayout, "%q: %v", part, err)
		}
		if minor < 0 {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagMinPayout, "%q: want a non-negative amount in %s", part, cur)
		}
		out[cur] = minor
	}
	return out, nil
}

// resplit splits an order again, for a late refund: under the rules file
// of its date's reprice the late refund was read with (settle reprice,
// migration 00038: the date's last when its item was read,
// SettledItem.RepriceID), else the one its date's run split it with, as
// the ledger kept it (migration 00030, settle status --rules), else (a run
// from before, or none kept) under rules, the file given now. A file given
// now that lost or changed the order's rule had the seller give back the
// whole refund from its share, and no later run with the right file undid
// it (found by an operator's trial); the kept file is the one the order
// settled under. Each kept file is parsed once, for every date that names
// it. A reprice's rules are kept by its id, never by date: a reprice of
// the date committed while the run goes on is another id, whose rules the
// next refund read after it splits under (the ledger records no clawback
// split under a reprice's rules once another is the date's:
// ResolveLateRefund). Before, the run kept the date's rules as it first
// looked them up, and split its later refunds of the date under the rules
// a reprice had replaced meanwhile.
func resplit(l *ledger.Ledger, rules *transform.Rules) pipeline.Resplit {
	var mu sync.Mutex
	runs := map[pipeline.Date][]ledger.RunRules{}
	parsed := map[string]*transform.Rules{}  // by file hash; nil: did not parse
	repriced := map[int64]*transform.Rules{} // by reprice id
	parse := func(fileHash, body, name string) *transform.Rules {
		kept, ok := parsed[fileHash]
		if !ok {
			kept, _ = transform.ParseRules(strings.NewReader(body), name) // it parsed when it was kept
			parsed[fileHash] = kept
		}
		return kept
	}
	keptFor := func(ctx context.Context, sellerID string, d pipeline.Date, reprice int64) (*transform.Rules, error) {
		mu.Lock()
		defer mu.Unlock()
		// A date repriced (settle reprice) splits under its last
		// reprice's rules, whichever shard.
		if reprice != 0 {
			kept, ok := repriced[reprice]
			if !ok {
				p, err := l.RepriceFile(ctx, d, reprice)
				if err != nil {
					return nil, pipeline.NotRead(err)
				}
				kept = parse(p.FileHash, p.Body, p.Name)
				repriced[reprice] = kept
			}
			return kept, nil
		}
		rs, ok := runs[d]
		if !ok {
			var err error
			if rs, err = l.RulesFiles(ctx, d); err != nil {
				return nil, pipeline.NotRead(err)
			}
			runs[d] = rs
		}
		for _, r := range rs {
			if r.Kept && r.Shard.Owns(sellerID) {
				return parse(r.FileHash, r.Body, r.Name), nil
			}
		}
		return nil, nil
	}
	return func(ctx context.Context, o pipeline.Order, d pipeline.Date, reprice int64) (pipeline.Split, error) {
		kept, err := keptFor(ctx, o.SellerID, d, reprice)
		if err != nil {
			return pipeline.Split{}, err
		}
		if kept != nil {
			return transform.SplitOrder(o, kept, d)
		}
		return transform.SplitOrder(o, rules, d)
	}
}

func sellersQueryDefault() string { return settlesql.SellersQuery }

func lateRefundsQueryDefault() string { return settlesql.LateRefundsQuery }
