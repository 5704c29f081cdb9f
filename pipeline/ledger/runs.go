package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lib/pq"

	"github.com/settlekit/settle/internal/dbconn"
	"github.com/settlekit/settle/pipeline"
)

// Lock takes the advisory locks of a run on a dedicated connection: the
// date's lock (exclusive for an unsharded run, shared for a shard) and the
// shard's own. A second run of the same date or shard gets ErrLocked at once.
// The locks die with the connection, so a killed process leaves none behind.
// While this Ledger holds the date's lock (LockDate), a run of the date
// takes its shard's lock alone.
func (l *Ledger) Lock(ctx context.Context, key pipeline.RunKey) (func() error, error) {
	dateKey, shardKey := l.lockKeys(key)
	fn := "pg_try_advisory_lock"
	if key.Shard.Count > 1 {
		fn = "pg_try_advisory_lock_shared"
	}
	keys := []advisoryLock{{fn, dateKey}, {"pg_try_advisory_lock", shardKey}}
	l.mu.Lock()
	if l.dates[key.Date] {
		keys = keys[1:]
	}
	l.mu.Unlock()
	return l.lock(ctx, "run "+key.String(), keys)
}

// LockDate takes the date's lock exclusively, as an unsharded run does, and
// holds it until release: every run of the date this Ledger opens meanwhile
// (the shards of a date re-run as a whole, one after another) runs under
// it, and no other process runs any of the date.
func (l *Ledger) LockDate(ctx context.Context, d pipeline.Date) (func() error, error) {
	dateKey, _ := l.lockKeys(pipeline.RunKey{Date: d})
	release, err := l.lock(ctx, "run "+d.String(), []advisoryLock{{"pg_try_advisory_lock", dateKey}})
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.dates == nil {
		l.dates = map[pipeline.Date]bool{}
	}
	l.dates[d] = true
	l.mu.Unlock()
	return func() error {
		l.mu.Lock()
		delete(l.dates, d)
		l.mu.Unlock()
		return release()
	}, nil
}

// LockReports waits for date d's report lock and holds it, on a connection
// of its own, until release: the writers of a date's reports (the shards
// of an Indexed Job write the same files, and settle report) write one
// after another, each reading the ledger after the one before it renamed
// its files into place, so the last files written have read everything
// committed before they began. Without it a shard that began reading
// before another shard's last payouts, and renamed after that shard's
// complete reports, left the older read in place (found by a review).
func (l *Ledger) LockReports(ctx context.Context, d pipeline.Date) (release func(), err error) {
	conn, err := dbconn.Fresh(ctx, l.db.Conn)
	if err != nil {
		return nil, fmt.Errorf("lock the reports of %s: %w", d, err)
	}
	key := fmt.Sprintf("settle/%s/reports/%s", l.schema, d)
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, key); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock the reports of %s: %w", d, err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key)
		conn.Close()
	}, nil
}

// advisoryLock is an advisory lock's key and the function that takes it.
type advisoryLock struct{ fn, key string }

// LockToReport takes date d's lock exclusively, as an unsharded run does,
// for settle report: while it holds it, no run of the date begins (nor a
// shard of it, a resolve, or a later date's run reconciling it again), so
// the reports it writes are never a moment of a run's work. A process
// holding the lock already refuses it at once (ErrLocked, KindLocked),
// naming the holder. Before, settle report only looked for a holder before
// and after it read, and a run that began while it read left its files
// written, a moment of that run, though it ended 75.
func (l *Ledger) LockToReport(ctx context.Context, d pipeline.Date) (func() error, error) {
	dateKey, _ := l.lockKeys(pipeline.RunKey{Date: d})
	return l.lock(ctx, "report "+d.String(), []advisoryLock{{"pg_try_advisory_lock", dateKey}})
}

// lock takes keys on a dedicated connection, for what: "run DATE[/SHARD]"
// or "report DATE", the name its errors and its holder's session give.
func (l *Ledger) lock(ctx context.Context, what string, keys []advisoryLock) (func() error, error) {
	conn, err := dbconn.Fresh(ctx, l.db.Conn)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	// Closing a sql.Conn returns it to the pool, its session and locks
	// with it: the locks taken are let go first (a shard's lock refused
	// after its date's shared lock was taken would otherwise keep the date
	// locked for as long as the process lives).
	asking := new(lockSession) // see heldLock
	release := func() error {
		l.mu.Lock()
		delete(l.held, conn)
		l.mu.Unlock()
		asking.Lock()
		defer asking.Unlock()
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock_all()`)
		_, _ = conn.ExecContext(context.Background(), `RESET application_name`) // holderName's, back to the pool's
		return conn.Close()
	}
	// The session holds the locks for the whole run, idle: a server that
	// ends idle sessions would let them go (PostgreSQL 14+; older servers
	// know no such setting).
	_, _ = conn.ExecContext(ctx, `SET idle_session_timeout = 0`)
	// Each lock is taken only by a server session that does not hold it
	// already, and by the session that took the others: an advisory lock
	// is re-entrant, so a session a pooler in transaction mode shares
	// between clients (PgBouncer's) would grant the date's lock to a
	// second run of it as well - both would pay. This process never asks
	// twice on one session (release lets go of everything), so a session
	// that holds the lock already, or a lock taken by another session than
	// the first, is a pooler's doing (sharedSession). So is a session that
	// holds any advisory lock when it is asked for the first: another
	// client's (a run of another date, whose lock this run's release,
	// pg_advisory_unlock_all, would let go of - found by a review: with
	// the pooler's one server session, the process check never differs).
	pid := 0
	var taken []advisoryLock
	// refuse lets go of the locks taken, one by one, and returns the
	// connection: not release, whose pg_advisory_unlock_all would let go
	// of another client's locks on a session a pooler shares too (a lock
	// refused there, held by another session, is one of its clients').
	refuse := func(err error) (func() error, error) {
		for _, t := range taken {
			_, _ = conn.ExecContext(context.Background(), `SELECT `+strings.Replace(t.fn, "try_advisory_lock", "advisory_unlock", 1)+`(hashtextextended($1, 0))`, t.key)
		}
		conn.Close()
		return nil, err
	}
	for _, k := range keys {
		var ok sql.NullBool
		var on int
		if err := conn.QueryRowContext(ctx, `SELECT CASE WHEN EXISTS (
				SELECT 1 FROM pg_locks p, (SELECT hashtextextended($1, 0) AS k) x
				WHERE p.locktype = 'advisory' AND p.granted AND p.pid = pg_backend_pid()
				  AND ($2 OR (p.objsubid = 1 AND p.classid::bigint = (x.k >> 32) & 4294967295 AND p.objid::bigint = x.k & 4294967295)))
			THEN NULL ELSE `+k.fn+`(hashtextextended($1, 0)) END, pg_backend_pid()`, k.key, pid == 0).Scan(&ok, &on); err != nil {
			release()
			return nil, fmt.Errorf("lock %s: %w", what, err)
		}
		if ok.Bool {
			taken = append(taken, k) // on session on: let go of it too if refused below
		}
		if !ok.Valid || (pid != 0 && on != pid) {
			return refuse(sharedSession(what, pid, on, !ok.Valid))
		}
		pid = on
		if !ok.Bool {
			return refuse(pipeline.E(pipeline.KindLocked, what, fmt.Errorf("%w for this date%s; try again once it ended (settle status shows the runs working)", pipeline.ErrLocked, lockHolder(ctx, conn, k.key))))
		}
	}
	// The session says whose it is (pg_stat_activity's application_name,
	// which every role may read): a process refused the lock names it.
	_, _ = conn.ExecContext(ctx, `SELECT set_config('application_name', $1, false)`, holderName(what))
	l.mu.Lock()
	if l.held == nil {
		l.held = map[*sql.Conn]heldLock{}
	}
	l.held[conn] = heldLock{what, pid, asking}
	l.mu.Unlock()
	return release, nil
}

// holderName is what the session holding a lock of what says of itself
// (application_name, of at most 63 bytes: the server cuts the rest): this
// machine's name (a pod's), this process and what it locks - a person's
// run, a pod of the CronJob retried while the first still lives, a later
// date's run reconciling the date again. The machine first: it is what a
// process refused the lock cannot know.
func holderName(what string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown host"
	}
	name := fmt.Sprintf("settle@%s pid %d: %s", host, os.Getpid(), what)
	for len(name) > 63 { // whole characters: a cut one is refused
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

// lockHolder names, as " (held by ...)", the session that holds the
// advisory lock of key: its application_name (holderName, set by the
// holder once it took its locks; an older settle's "settle" or none), its
// server process, and, where this role may read them, the address it
// connected from and since when. "" when none is found (it ended since)
// or the question fails: the refusal stands either way.
func lockHolder(ctx context.Context, conn interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, key string) string {
	var (
		pid         int
		name, addr  string
		since       sql.NullTime
		description []string
	)
	err := conn.QueryRowContext(ctx, `SELECT a.pid, COALESCE(a.application_name, ''), COALESCE(host(a.client_addr), ''), a.backend_start
		FROM pg_locks p JOIN pg_stat_activity a ON a.pid = p.pid, (SELECT hashtextextended($1, 0) AS k) x
		WHERE p.locktype = 'advisory' AND p.granted AND p.objsubid = 1 AND p.pid <> pg_backend_pid()
		  AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND p.classid::bigint = (x.k >> 32) & 4294967295 AND p.objid::bigint = x.k & 4294967295
		ORDER BY a.backend_start LIMIT 1`, key).Scan(&pid, &name, &addr, &since)
	if err != nil {
		return ""
	}
	if name != "" {
		description = append(description, strconv.Quote(name))
	}
	description = append(description, fmt.Sprintf("server process %d", pid))
	if addr != "" {
		description = append(description, "connected from "+addr)
	}
	if since.Valid {
		description = append(description, "since "+since.Time.UTC().Format(time.RFC3339))
	}
	return " (held by " + strings.Join(description, ", ") + ")"
}

// heldLock is what a session of a Ledger's locks locks, and the server
// process that took them (pg_backend_pid). asking serializes the
// questions to the session: checkLocks reads its answer (a row), and a
// statement sent by another goroutine while that row is read - the run's
// sends ask at once - fails the connection's protocol ("there is already
// a query being processed on this connection"), which read as the lock
// lost (found by a demo run of this very check).
type heldLock struct {
	what   string
	pid    int
	asking *lockSession
}

// lockSession serializes the questions to a lock's session (heldLock) and
// numbers checkLocks' questions, so that a check that waited for the
// session while another question was asked takes the answer of one begun
// after it came, if that found the lock held, instead of asking again: it
// is as fresh as its own would be. The run's sends each check the lock
// (MarkSent), up to a few hundred at once: asked one after the other on
// the one session, each question's timeout ran while it waited for the
// others, and on a busy server the last of them timed out unasked, which
// closes the session and loses the lock (twice in a row on a night of
// 10,000 orders, the machine's load about 30).
type lockSession struct {
	sync.Mutex
	begun atomic.Uint64 // questions begun
	held  uint64        // the number of the last question that found the lock held; under the mutex
}

// sharedSession is the error of a lock whose server session is not this
// connection's alone (lock): a pooler in transaction mode between settle
// and PostgreSQL. A usage error: settle is to be connected otherwise.
func sharedSession(what string, pid, on int, held bool) error {
	why := fmt.Sprintf("the server session that took its first lock (process %d) is not the one that took the next (process %d)", pid, on)
	if held {
		why = fmt.Sprintf("the server session given to it (process %d) holds the lock already (or another advisory lock), for another client", on)
	}
	return pipeline.Errorf(pipeline.KindUsage, what,
		"%s: a connection pooler in transaction mode (PgBouncer) shares PostgreSQL's sessions between clients, and a date's lock is a session's: "+
			"two runs of the date could both hold it and both pay; connect settle's ledger to PostgreSQL directly (README, \"What settle needs from its databases\")", why)
}

// checkLocks returns an error when a session holding one of this Ledger's
// locks has ended (the server terminated it, a failover, the network):
// its locks went with it, and another run of the date may hold them now,
// so nothing more may be sent (found by a review: a run whose lock session
// ended went on sending beside a second run of its date). Asked before
// every send (MarkSent), before each stage (CheckLocks, by the Runner) and
// before the run's end is recorded (FinishRun),
// on the locks' own sessions, which a server that
// ended them cannot answer from, and which must be answered by the server
// process that took the lock (a pooler in transaction mode moves a
// connection between them); once lost, always lost. The error is
// pipeline.ErrLockLost's, so that the engine stops at once: one line, not
// one per request left. A ctx already done is its error; a ctx done while
// the question is asked does not interrupt it (lockCheckTimeout, or ctx's
// deadline, does):
// lib/pq would close the lock's session, and a stopping run lose its lock.
func (l *Ledger) checkLocks(ctx context.Context) error {
	l.mu.Lock()
	if l.lost != nil || len(l.held) == 0 {
		defer l.mu.Unlock()
		return l.lost
	}
	held := make(map[*sql.Conn]heldLock, len(l.held))
	for c, h := range l.held {
		held[c] = h
	}
	l.mu.Unlock()
	for c, h := range held {
		if err := ctx.Err(); err != nil {
			return err
		}
		arrived := h.asking.begun.Load()
		h.asking.Lock()
		if h.asking.held > arrived {
			// A question begun after this check came found the lock held.
			h.asking.Unlock()
			continue
		}
		if err := ctx.Err(); err != nil {
			h.asking.Unlock()
			return err
		}
		n := h.asking.begun.Add(1)
		// Not on ctx: lib/pq closes a connection whose statement a
		// cancelled context interrupts - here the lock's session, and the
		// lock with it, when the run is told to stop (SIGTERM) while it
		// asks, with requests of its still in flight. The question is
		// bounded by a timeout of its own, from when the session is its
		// (not while it waits for another question), or ctx's deadline
		// when sooner (FinishRun's short record); past it the session is
		// closed and the lock lost indeed.
		timeout := lockCheckTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl))
		}
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		var pid int
		err := c.QueryRowContext(qctx, `SELECT pg_backend_pid()`).Scan(&pid)
		if err == nil && pid == h.pid {
			h.asking.held = n
		}
		h.asking.Unlock()
		cancel()
		var lost lockLost
		switch {
		case err != nil:
			lost = lockLost{fmt.Sprintf("the lock of %s was lost (its database session ended: %v): nothing more is sent; run the date again", h.what, err)}
		case pid != h.pid:
			// The connection is served by another server process than
			// the one holding the lock: a pooler in transaction mode
			// (lock) moved it, and the lock is any client's now.
			lost = lockLost{fmt.Sprintf("the lock of %s is not this connection's any more: the server process that took it was %d, the one answering now %d - "+
				"a connection pooler in transaction mode (PgBouncer) is between settle and PostgreSQL, and a date's lock is a session's: "+
				"nothing more is sent; connect settle's ledger to PostgreSQL directly (README, \"What settle needs from its databases\"), then run the date again", h.what, h.pid, pid)}
		}
		if lost.msg != "" {
			l.mu.Lock()
			if l.lost == nil {
				l.lost = lost
			}
			l.mu.Unlock()
			return lost
		}
	}
	return nil
}

// lockCheckTimeout bounds checkLocks' question to a lock's session.
const lockCheckTimeout = 10 * time.Second

// CheckLocks returns an error with pipeline.ErrLockLost in its chain once
// a session holding one of this Ledger's locks has ended (checkLocks): a
// round trip on each lock's session (pipeline.LockChecker, asked by the
// Runner before each stage).
func (l *Ledger) CheckLocks(ctx context.Context) error { return l.checkLocks(ctx) }

// lockLost is checkLocks's error: pipeline.ErrLockLost, in words that
// name the run and why its session ended.
type lockLost struct{ msg string }

func (e lockLost) Error() string { return e.msg }
func (e lockLost) Unwrap() error { return pipeline.ErrLockLost }

// lockKeys are the advisory lock keys of a run: its date's and its shard's.
func (l *Ledger) lockKeys(key pipeline.RunKey) (date, shard string) {
	date = fmt.Sprintf("settle/%s/date/%s", l.schema, key.Date)
	return date, fmt.Sprintf("%s/shard/%d/%d", date, key.Shard.Index, key.Shard.Count)
}

const runColumns = `id, business_date, shard_index, shard_count, state, stages_done, time_zone,
	rules_hash, config_hash, attempts, last_error, started_at, updated_at, finished_at`

func scanRun(row interface{ Scan(...any) error }, extra ...any) (*pipeline.Run, error) {
	var (
		r      pipeline.Run
		date   time.Time
		stages pq.StringArray
		state  string
	)
	dest := append([]any{&r.ID, &date, &r.Key.Shard.Index, &r.Key.Shard.Count, &state, &stages, &r.TimeZone,
		&r.RulesHash, &r.ConfigHash, &r.Attempts, &r.LastError, &r.StartedAt, &r.UpdatedAt, &r.FinishedAt}, extra...)
	err := row.Scan(dest...)
	if err != nil {
		return nil, err
	}
	r.Key.Date = pipeline.DateOf(date)
	r.State = pipeline.RunState(state)
	for _, s := range stages {
		r.StagesDone = append(r.StagesDone, pipeline.Stage(s))
	}
	return &r, nil
}

// OpenRun returns the run for key, creating it when new; a resumed run
// counts one more attempt and is marked running again. The run's rules
// hash names the rules that split its day: a resumed run whose transform
// stage is not done yet (stopped after extract, or read again with
// --reextract) records p's, as its items will be split under them; once
// the stage is done, the hash it was done with stays. So do its time zone
// and config hash with its extract stage: a run resumed before the day was
// read (or read again with --reextract) reads it in p's zone, and says so,
// so that the windows of the dates beside it are judged against the hours
// it read, not those it was first opened in.
//
// The run records p.Accounts, the provider account of each effect kind,
// over those it had; a resumed run whose account for a kind it sent
// requests of differs is refused (KindUsage, sameAccounts).
//
// A date is run in one sharding: a new run of a date whose runs are in
// another number of shards (a whole-day run after an Indexed Job's shards,
// or the reverse) is refused (KindUsage). It would find every order the
// other runs settled "already settled", leave their unfinished work
// undone, and mix both into the date's reports. The check and the insert
// hold a lock on the date's openings, so that two runs of different
// shardings starting at once cannot both pass it.
func (l *Ledger) OpenRun(ctx context.Context, key pipeline.RunKey, p pipeline.RunParams) (*pipeline.Run, bool, error) {
	var (
		r       *pipeline.Run
		created bool
	)
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
			fmt.Sprintf("settle/%s/open/%s", l.schema, key.Date)); err != nil {
			return err
		}
		if err := sameSharding(ctx, tx, key); err != nil {
			return err
		}
		accounts, err := json.Marshal(p.Accounts)
		if err != nil {
			return err
		}
		if p.Accounts == nil {
			accounts = []byte("{}")
		}
		if err := sameAccounts(ctx, tx, key, accounts); err != nil {
			return err
		}
		if !p.NewAccounts {
			if err := accountsAsBefore(ctx, tx, key, accounts); err != nil {
				return err
			}
		}
		if p.SourceDB != "" && !p.NewSource {
			if err := sameSource(ctx, tx, key, p.SourceDB); err != nil {
				return err
			}
		}
		rulesFile, err := keepRulesFile(ctx, tx, key, p)
		if err != nil {
			return err
		}
		// A run that names no platform database records none, and its SQL
		// names no source_db: the tests of older migrations open runs at
		// their schema.
		args := []any{key.Date.String(), key.Shard.Index, key.Shard.Count, p.TimeZone, p.RulesHash, p.ConfigHash, string(accounts), rulesFile}
		sourceColumn, sourceValue, sourceSet := "", "", ""
		if p.SourceDB != "" {
			args = append(args, p.SourceDB)
			sourceColumn, sourceValue, sourceSet = ", source_db", ", $9", "source_db = EXCLUDED.source_db,"
		}
		row := tx.QueryRowContext(ctx, `
			INSERT INTO runs (business_date, shard_index, shard_count, time_zone, rules_hash, config_hash, accounts, rules_file`+sourceColumn+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8`+sourceValue+`)
			ON CONFLICT (business_date, shard_index, shard_count) DO UPDATE
			SET attempts = runs.attempts + 1,
			    state = CASE WHEN runs.state = 'done' THEN 'done' ELSE 'running' END,
			    rules_hash = CASE WHEN 'transform' = ANY (runs.stages_done) THEN runs.rules_hash
			                      ELSE EXCLUDED.rules_hash END,
			    rules_file = CASE WHEN 'transform' = ANY (runs.stages_done) THEN runs.rules_file
			                      ELSE EXCLUDED.rules_file END,
			    time_zone = CASE WHEN 'extract' = ANY (runs.stages_done) THEN runs.time_zone
			                     ELSE EXCLUDED.time_zone END,
			    config_hash = CASE WHEN 'extract' = ANY (runs.stages_done) THEN runs.config_hash
			                       ELSE EXCLUDED.config_hash END,
			    accounts = runs.accounts || EXCLUDED.accounts,
			    `+sourceSet+`
			    updated_at = now()
			RETURNING `+runColumns+`, (xmax = 0) AS created`,
			args...)
		r, err = scanRun(row, &created)
		return err
	})
	if pipeline.KindOf(err) == pipeline.KindUsage {
		return nil, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("open run %s: %w", key, err)
	}
	return r, created, nil
}

// keepRulesFile records p's rules file (rules_files, migration 00030),
// once for the same name and bytes, and returns its file_hash for the
// run's rules_file: NULL when p has none. A file is kept only for a run
// that may still split with it: not for key's run once its transform
// stage is done (it keeps the file it split with; OpenRun).
func keepRulesFile(ctx context.Context, tx *sql.Tx, key pipeline.RunKey, p pipeline.RunParams) (sql.NullString, error) {
	if p.RulesName == "" {
		return sql.NullString{}, nil
	}
	var split bool
	err := tx.QueryRowContext(ctx, `SELECT 'transform' = ANY (stages_done) FROM runs
		WHERE business_date = $1 AND shard_index = $2 AND shard_count = $3`, key.Date.String(), key.Shard.Index, key.Shard.Count).Scan(&split)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return sql.NullString{}, fmt.Errorf("keep rules file %s: %w", p.RulesName, err)
	}
	if split {
		return sql.NullString{}, nil // its own stays (OpenRun's CASE)
	}
	fileHash, err := keepFile(ctx, tx, p.RulesName, p.RulesHash, p.RulesBody)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: fileHash, Valid: true}, nil
}

// keepFile records a rules file (rules_files), once for the same name and
// bytes, and returns its file_hash.
func keepFile(ctx context.Context, tx *sql.Tx, name, rulesHash string, body []byte) (string, error) {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(body)
	fileHash := hex.EncodeToString(h.Sum(nil))
	if _, err := tx.ExecContext(ctx, `INSERT INTO rules_files (file_hash, name, rules_hash, body) VALUES ($1, $2, $3, $4)
		ON CONFLICT (file_hash) DO NOTHING`, fileHash, name, rulesHash, body); err != nil {
		return "", fmt.Errorf("keep rules file %s: %w", name, err)
	}
	return fileHash, nil
}

// sameSharding refuses a new run of key's date when the date's runs are in
// another number of shards. A run already recorded under key is resumed
// whatever else the date holds (a ledger from before the check may hold
// both shardings).
func sameSharding(ctx context.Context, tx *sql.Tx, key pipeline.RunKey) error {
	runs, err := queryRuns(ctx, tx, `WHERE business_date = $1 ORDER BY shard_count, shard_index`, key.Date.String())
	if err != nil {
		return err
	}
	if other := pipeline.OtherSharding(runs, key); other != nil {
		return pipeline.E(pipeline.KindUsage, "run "+key.String(), other)
	}
	return nil
}

// sameAccounts refuses (KindUsage) to resume key's run with another
// provider account for an effect kind (accounts, JSON: kind -> account)
// than the one the run recorded, once the run sent a request of that kind:
// an idempotency key is known only to the account it was sent to, and the
// run asks about its requests whose answer never came, and sends again
// those the provider says it never saw - the other account would be asked,
// say "not found", and be sent the request again under the same key, paid
// from both (and a failure there would have the next attempt sent from the
// first). A kind the run sent nothing of, a kind not configured now, and a
// run from before the accounts were recorded are not judged; what passes
// is recorded by OpenRun.
func sameAccounts(ctx context.Context, tx *sql.Tx, key pipeline.RunKey, accounts []byte) error {
	rows, err := tx.QueryContext(ctx, `
		SELECT e.kind, r.accounts->>e.kind, $4::jsonb->>e.kind, count(*), r.id
		FROM runs r JOIN effects e ON e.run_id = r.id
		WHERE r.business_date = $1 AND r.shard_index = $2 AND r.shard_count = $3
		  AND r.accounts ? e.kind AND $4::jsonb ? e.kind AND r.accounts->>e.kind <> $4::jsonb->>e.kind
		  AND (e.sends > 0 OR e.state <> 'planned')
		GROUP BY 1, 2, 3, 5 ORDER BY 1`,
		key.Date.String(), key.Shard.Index, key.Shard.Count, string(accounts))
	if err != nil {
		return fmt.Errorf("open run %s: read its accounts: %w", key, err)
	}
	defer rows.Close()
	var was []string
	for rows.Next() {
		var kind, theirs, ours string
		var n, id int64
		if err := rows.Scan(&kind, &theirs, &ours, &n, &id); err != nil {
			return err
		}
		was = append(was, fmt.Sprintf("%d %s requests were sent from %s (run %d), and this run's go to %s", n, kind, theirs, id, ours))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(was) == 0 {
		return nil
	}
	return pipeline.Errorf(pipeline.KindUsage, "run "+key.String(),
		"%s: an idempotency key is known only to the account it was sent to, and a request whose answer never came would be asked about at the other, found missing there and sent to it again (paid twice); "+
			"run %s with the settings it sent from (a new account takes over from a date not yet run)",
		strings.Join(was, "; "), key.Date)
}

// accountsAsBefore refuses (KindUsage) a run of key's date that has sent
// nothing yet from another provider account for an effect kind (accounts,
// JSON: kind -> account) than the latest earlier date that sent requests
// from the account it recorded for that kind recorded. A date sent from
// an account once it sent a request of any kind the account drives (a
// provider's kinds share one: an Infinia trade file, a WeChat
// distribution): judged by the kind alone, the first date of a new
// account that sent its trade files and none of its revenue shares yet
// (or a WeChat merchant's distributions and no unfreeze, sent some nights
// only) had its own resumed run, and every date after it, refused until a
// request of that kind went out from the new account, which none could
// send (found by a review). sameAccounts holds a date to the
// account it sent from, and a new account took over from a date not yet
// run without a word: the settings of another environment (a sandbox's
// appId and keys, a second merchant's Secret) applied to the production
// namespace had every night's payouts recorded paid by that account and
// reconciled against it, exit 0, while no seller was paid (the accounts
// of the dates before are where the sellers' funds are). The first date of
// a new account is run with RunParams.NewAccounts (--new-account).
func accountsAsBefore(ctx context.Context, tx *sql.Tx, key pipeline.RunKey, accounts []byte) error {
	rows, err := tx.QueryContext(ctx, `
		SELECT o.kind, prev.account, prev.business_date, o.account
		FROM jsonb_each_text($4::jsonb) AS o(kind, account)
		CROSS JOIN LATERAL (
			SELECT r.accounts->>o.kind AS account, r.business_date FROM runs r
			WHERE r.business_date < $1 AND r.accounts ? o.kind
			  AND EXISTS (SELECT 1 FROM effects e WHERE e.run_id = r.id AND r.accounts->>e.kind = r.accounts->>o.kind
			    AND (e.sends > 0 OR e.state <> 'planned'))
			ORDER BY r.business_date DESC LIMIT 1) prev
		WHERE prev.account <> o.account
		  AND NOT EXISTS (SELECT 1 FROM runs r JOIN effects e ON e.run_id = r.id
			WHERE r.business_date = $1 AND r.shard_index = $2 AND r.shard_count = $3
			  AND r.accounts->>e.kind = o.account AND (e.sends > 0 OR e.state <> 'planned'))
		ORDER BY 1`,
		key.Date.String(), key.Shard.Index, key.Shard.Count, string(accounts))
	if err != nil {
		return fmt.Errorf("open run %s: read the accounts of the dates before: %w", key, err)
	}
	defer rows.Close()
	var was []string
	for rows.Next() {
		var kind, theirs, ours string
		var date time.Time
		if err := rows.Scan(&kind, &theirs, &date, &ours); err != nil {
			return err
		}
		was = append(was, fmt.Sprintf("%s requests of %s were sent from %s, and this run's go to %s", kind, date.Format(time.DateOnly), theirs, ours))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(was) == 0 {
		return nil
	}
	return pipeline.Errorf(pipeline.KindUsage, "run "+key.String(),
		"%s: another account than the dates before sent from (another environment's settings, a second merchant's?) is taken only with --new-account, given on the command line for the first date of an account that takes over for good; "+
			"run %s with the settings the dates before it sent from",
		strings.Join(was, "; "), key.Date)
}

// sameSource refuses (KindUsage) a run of key's date reading from another
// platform database (ours, as its server names it) than the one the date's
// runs read from, or, for a date none of whose runs recorded one, the
// latest earlier date's: a source URL pointing at another database (a
// staging copy, another marketplace's, exported in a person's shell) had
// the next date's orders read there and paid, and a resumed date's late
// refunds read there and clawed back from the sellers by order number,
// and only the reconcile stage's look at the earlier windows, after the
// sending, said so. A run that recorded none (its server would not say,
// or from before migration 00043) is not judged.
func sameSource(ctx context.Context, tx *sql.Tx, key pipeline.RunKey, ours string) error {
	var theirs string
	var date time.Time
	err := tx.QueryRowContext(ctx, `
		SELECT source_db, business_date FROM runs
		WHERE business_date <= $1 AND source_db <> ''
		ORDER BY business_date DESC, (shard_index = $2 AND shard_count = $3) DESC, id DESC LIMIT 1`,
		key.Date.String(), key.Shard.Index, key.Shard.Count).Scan(&theirs, &date)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && theirs == ours) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open run %s: read the platform database of the dates before: %w", key, err)
	}
	which := "its date's runs read their day"
	if d := date.Format(time.DateOnly); d != key.Date.String() {
		which = "the latest date before it, " + d + ", read its day"
	}
	return pipeline.Errorf(pipeline.KindUsage, "run "+key.String(),
		"the platform database is %s, and %s from %s: another database (a staging copy, another marketplace's, a URL left in the environment?) would have its orders paid and its refunds clawed back from the sellers; "+
			"check --source-database-url (SETTLE_SOURCE_DATABASE_URL, else the ledger's --database-url); if the platform moved to this database for good, run %s once with --new-source (command line only)",
		ours, which, theirs, key.Date)
}

// CheckOpen returns what OpenRun would refuse of p's accounts and
// platform database for key's run (sameAccounts, accountsAsBefore,
// sameSource), recording nothing: a dry run says a real run is refused.
func (l *Ledger) CheckOpen(ctx context.Context, key pipeline.RunKey, p pipeline.RunParams) error {
	accounts, err := json.Marshal(p.Accounts)
	if err != nil {
		return err
	}
	if p.Accounts == nil {
		accounts = []byte("{}")
	}
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := sameAccounts(ctx, tx, key, accounts); err != nil {
		return err
	}
	if !p.NewAccounts {
		if err := accountsAsBefore(ctx, tx, key, accounts); err != nil {
			return err
		}
	}
	if p.SourceDB != "" && !p.NewSource {
		return sameSource(ctx, tx, key, p.SourceDB)
	}
	return nil
}

// RunAccount returns the provider account run runID recorded for effect
// kind (runs.accounts, migration 00026, as OpenRun records it): "" when it
// recorded none (a run from before the accounts were recorded, or one run
// without that provider).
func (l *Ledger) RunAccount(ctx context.Context, runID int64, kind string) (string, error) {
	var account sql.NullString
	err := l.db.QueryRowContext(ctx, `SELECT accounts->>$2 FROM runs WHERE id = $1`, runID, kind).Scan(&account)
	if err != nil {
		return "", fmt.Errorf("read run %d's %s account: %w", runID, kind, err)
	}
	return account.String, nil
}

// GetRun returns the run for key, or nil when there is none.
func (l *Ledger) GetRun(ctx context.Context, key pipeline.RunKey) (*pipeline.Run, error) {
	r, err := scanRun(l.db.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs
		WHERE business_date = $1 AND shard_index = $2 AND shard_count = $3`,
		key.Date.String(), key.Shard.Index, key.Shard.Count))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", key, err)
	}
	return r, nil
}

// Migrated reports whether the ledger's schema has been created.
func (l *Ledger) Migrated(ctx context.Context) (bool, error) {
	var ok bool
	err := l.db.QueryRowContext(ctx, `SELECT to_regclass('runs') IS NOT NULL`).Scan(&ok)
	return ok, err
}

// RunsOn returns every run of a date (all shardings), oldest first.
func (r Reader) RunsOn(ctx context.Context, d pipeline.Date) ([]*pipeline.Run, error) {
	return queryRuns(ctx, r.q, `WHERE business_date = $1 ORDER BY shard_count, shard_index`, d.String())
}

// DateRun is a date with a run, and the shards of its sharding with none
// (a pod of an Indexed Job that never started, say): empty when every
// shard has a run, or the date was run whole. A date an older settle ran
// in several shardings (Mixed) is whole when every seller's hash is in a
// run of one of them; else Missing are the shards of its finest sharding
// that hold sellers in no run (settle opens no new run of such a date).
type DateRun struct {
	Date    pipeline.Date
	Missing []pipeline.Shard
	Mixed   bool
}

// maxShardingsLCM bounds the hashes modulo which the runs of a date in
// several shardings are compared (the least common multiple of their
// numbers of shards).
const maxShardingsLCM = 1 << 20

// DatesRun returns the dates from since up to before (not included) that
// have a run of any shard, in order, each with its shards that have none.
func (l *Ledger) DatesRun(ctx context.Context, since, before pipeline.Date) ([]DateRun, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT to_char(business_date, 'YYYY-MM-DD'), shard_count, array_agg(shard_index ORDER BY shard_index)
		FROM runs WHERE business_date >= $1 AND business_date < $2 GROUP BY business_date, shard_count ORDER BY 1, 2`, since.String(), before.String())
	if err != nil {
		return nil, fmt.Errorf("read the dates run: %w", err)
	}
	defer rows.Close()
	var out []DateRun
	var shardings []sharding // the last date's
	for rows.Next() {
		var day string
		var count int
		var indexes pq.Int64Array
		if err := rows.Scan(&day, &count, &indexes); err != nil {
			return nil, fmt.Errorf("read the dates run: %w", err)
		}
		d, err := pipeline.ParseDate(day)
		if err != nil {
			return nil, err
		}
		if n := len(out); n > 0 && out[n-1].Date == d {
			shardings = append(shardings, sharding{count, indexes})
			out[n-1].Missing, out[n-1].Mixed = missingOf(shardings), true
			continue
		}
		shardings = []sharding{{count, indexes}}
		out = append(out, DateRun{Date: d, Missing: missingOf(shardings)})
	}
	return out, rows.Err()
}

// LeftUndone is a run of an earlier date that no process holds and that
// left work only a run of its date does: the next night's run settles its
// own date alone, and the balances netted into a payout planned or in
// flight wait on that date's run.
type LeftUndone struct {
	Key   pipeline.RunKey
	State pipeline.RunState
	// StagesDone are the stages the run finished.
	StagesDone []pipeline.Stage
	// LastError is the run's recorded last error, or its note of what
	// needs a person (pipeline.NeedsPersonNote).
	LastError string
	// InFlight counts its requests sent with no answer recorded (sent,
	// unknown): only a status query of a run of the date settles them.
	InFlight int64
	// Planned counts its requests recorded as intents and never sent.
	Planned int64
	// Stopped is true when the run never ended: recorded running with no
	// process holding it (killed, its pod evicted, past the Job's
	// deadline, or run with --until a stage before reconcile), or done
	// and opened again since its end was recorded (a re-run of it killed:
	// a run done stays done while it runs again).
	Stopped bool
}

// Failed reports whether the run ended on an error (exit 1, 2 or 3: a
// stage failed, a provider still processing past --provider-wait,
// configuration refused, input rejected) rather than finishing with a
// note for a person.
func (u LeftUndone) Failed() bool {
	return u.State == pipeline.RunFailed && !strings.HasPrefix(u.LastError, pipeline.NeedsPersonNote)
}

// leftUndoneQuery reads the runs of the dates from $1 to $2 (exclusive)
// that stopped ($3 running, or done and opened again after their end was
// recorded: OpenRun moves updated_at, FinishRun both it and finished_at),
// ended failed on an error (their last error not starting with $4,
// pipeline.NeedsPersonNote), or left requests planned or in flight. The
// runs are read by their date (the unique index on date and shard: a
// month's runs), the open effects through their partial index
// (effects_one_open): the few left open, not the window's requests.
const leftUndoneQuery = `SELECT to_char(r.business_date, 'YYYY-MM-DD'), r.shard_index, r.shard_count, r.state, r.stages_done, r.last_error,
		COALESCE(o.in_flight, 0), COALESCE(o.planned, 0), r.state = $3 OR r.state = 'done' AND r.updated_at > r.finished_at
	FROM runs r
	LEFT JOIN (SELECT run_id, count(*) FILTER (WHERE state <> 'planned') AS in_flight, count(*) FILTER (WHERE state = 'planned') AS planned
		FROM effects WHERE state IN ('planned', 'sent', 'unknown') GROUP BY run_id) o ON o.run_id = r.id
	WHERE r.business_date >= $1 AND r.business_date < $2
	  AND (o.run_id IS NOT NULL OR r.state = $3 OR (r.state = 'done' AND r.updated_at > r.finished_at)
	       OR (r.state = 'failed' AND NOT starts_with(r.last_error, $4)))
	ORDER BY r.business_date, r.shard_count, r.shard_index`

// LeftUndone returns the runs of the dates from since to before
// (exclusive) that no process holds now (neither the run's lock nor its
// date's) and that left work undone for a run of their date: stopped
// before their end (killed, or run with --until: their later stages not
// reached, perhaps payouts planned and never sent; or a re-run of a run
// done, killed), ended failed on an error and not run again (exit 1 past
// the Job's retries, 2 or 3), or with requests planned or sent and never
// answered, whatever their state. A run that ended with only a note for a
// person (exit 4: held, for a person) and nothing open is not listed: it
// waits on that person, who was told by its run. Oldest first.
func (l *Ledger) LeftUndone(ctx context.Context, since, before pipeline.Date) ([]LeftUndone, error) {
	rows, err := l.db.QueryContext(ctx, leftUndoneQuery, since.String(), before.String(), string(pipeline.RunRunning), pipeline.NeedsPersonNote)
	if err != nil {
		return nil, fmt.Errorf("read the runs left undone: %w", err)
	}
	var found []LeftUndone
	for rows.Next() {
		var (
			u      LeftUndone
			day    string
			state  string
			stages pq.StringArray
		)
		if err := rows.Scan(&day, &u.Key.Shard.Index, &u.Key.Shard.Count, &state, &stages, &u.LastError, &u.InFlight, &u.Planned, &u.Stopped); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the runs left undone: %w", err)
		}
		if u.Key.Date, err = pipeline.ParseDate(day); err != nil {
			rows.Close()
			return nil, err
		}
		u.State = pipeline.RunState(state)
		for _, s := range stages {
			u.StagesDone = append(u.StagesDone, pipeline.Stage(s))
		}
		found = append(found, u)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []LeftUndone
	for _, u := range found {
		// Not while a process works on the date: one that re-runs a date
		// run in shards as a whole holds the date's lock and takes each
		// shard's in turn, and finishes the shards it has not reached
		// yet once it does.
		active, err := l.dateActive(ctx, u.Key)
		if err == nil && !active {
			active, err = l.runActive(ctx, u.Key)
		}
		if err != nil {
			return nil, err
		}
		if !active {
			out = append(out, u)
		}
	}
	return out, nil
}

// WaitingOnAPerson returns the runs of the dates from since to before
// (exclusive) that ended with a note for a person (exit 4) and were not
// run again since (neither failed since nor opened again), oldest first:
// their work is held for that person. LeftUndone lists those of them
// with requests planned or in flight. Read by date, as LeftUndone's runs.
func (l *Ledger) WaitingOnAPerson(ctx context.Context, since, before pipeline.Date) ([]pipeline.RunKey, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT to_char(business_date, 'YYYY-MM-DD'), shard_index, shard_count FROM runs
		WHERE business_date >= $1 AND business_date < $2 AND state IN ('failed', 'done') AND starts_with(last_error, $3)
		  AND (state = 'failed' OR updated_at <= finished_at)
		ORDER BY business_date, shard_count, shard_index`, since.String(), before.String(), pipeline.NeedsPersonNote)
	if err != nil {
		return nil, fmt.Errorf("read the runs waiting on a person: %w", err)
	}
	defer rows.Close()
	var out []pipeline.RunKey
	for rows.Next() {
		var k pipeline.RunKey
		var day string
		if err := rows.Scan(&day, &k.Shard.Index, &k.Shard.Count); err != nil {
			return nil, fmt.Errorf("read the runs waiting on a person: %w", err)
		}
		if k.Date, err = pipeline.ParseDate(day); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// sharding is a date's runs in one number of shards: their indexes.
type sharding struct {
	count   int
	indexes []int64
}

// missingOf returns the shards of a date's runs in shardings (ordered by
// number of shards) that hold sellers in no run: in one sharding, its
// shards with no run; in several (an older settle's), the shards of the
// finest whose sellers' hashes, modulo the least common multiple of the
// numbers of shards, are in no run of any (0/2 and 1/4 and 3/4 leave
// none: they are judged by their sellers, not by one sharding).
func missingOf(shardings []sharding) []pipeline.Shard {
	lcm := 1
	for _, s := range shardings {
		lcm = lcm / gcd(lcm, s.count) * s.count
		if lcm > maxShardingsLCM {
			lcm = 0
			break
		}
	}
	finest := shardings[len(shardings)-1]
	var missing []pipeline.Shard
	for i := range finest.count {
		ran := func(h int) bool { // a hash h's seller is in some run
			for _, s := range shardings {
				if slices.Contains(s.indexes, int64(h%s.count)) {
					return true
				}
			}
			return false
		}
		left := false
		if lcm == 0 {
			// Too many hashes to compare: a shard of the finest with no
			// run of its own, whatever the others ran.
			left = !slices.Contains(finest.indexes, int64(i))
		}
		for h := i; lcm > 0 && h < lcm && !left; h += finest.count {
			left = !ran(h)
		}
		if left {
			missing = append(missing, pipeline.Shard{Index: i, Count: finest.count})
		}
	}
	return missing
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (l *Ledger) runs(ctx context.Context, where string, args ...any) ([]*pipeline.Run, error) {
	return queryRuns(ctx, l.db, where, args...)
}

// queryRuns reads the runs where says, in a transaction or not.
func queryRuns(ctx context.Context, db interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, where string, args ...any) ([]*pipeline.Run, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+runColumns+` FROM runs r `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	var runs []*pipeline.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// CompleteStage records that stage s of the run is done. Idempotent.
func (l *Ledger) CompleteStage(ctx context.Context, runID int64, s pipeline.Stage) error {
	return completeStage(ctx, l.db, runID, s)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func completeStage(ctx context.Context, db execer, runID int64, s pipeline.Stage) error {
	// An error of this very stage, recorded by an earlier attempt, is no
	// longer the run's last word once the stage is done.
	_, err := db.ExecContext(ctx, `UPDATE runs SET stages_done = array_append(stages_done, $2), updated_at = now(),
		last_error = CASE WHEN starts_with(last_error, 'stage ' || $2 || ': ') THEN '' ELSE last_error END
		WHERE id = $1 AND NOT ($2 = ANY (stages_done))`, runID, string(s))
	if err != nil {
		return fmt.Errorf("record stage %s done: %w", s, err)
	}
	return nil
}

// FinishRun records the run's state and the error that ended it. It
// records nothing once a lock this Ledger holds was lost (checkLocks): a
// second run of the date may have opened the run again since, and the
// first's end would be written over the second's state (found by a review
// that terminated the lock's session); the run is left as a killed run
// leaves it, to be resumed.
func (l *Ledger) FinishRun(ctx context.Context, runID int64, state pipeline.RunState, lastErr string) error {
	if err := l.checkLocks(ctx); err != nil {
		return fmt.Errorf("record run state: %w", err)
	}
	_, err := l.db.ExecContext(ctx, `UPDATE runs SET state = $2, last_error = $3, updated_at = now(),
		finished_at = CASE WHEN $2 = 'done' THEN now() ELSE finished_at END WHERE id = $1`,
		runID, string(state), lastErr)
	if err != nil {
		return fmt.Errorf("record run state: %w", err)
	}
	return nil
}

// ProviderRejectsOfRun groups by reason the run's orders that a provider
// rejected after transform (a payment Pay Protocol does not know, a row of
// a trade file Infinia refused): items in state rejected. Nothing is paid
// on them; the reject gate and the run's summary count them with the rows
// transform rejected.
func (l *Ledger) ProviderRejectsOfRun(ctx context.Context, runID int64) ([]RejectReason, error) {
	return l.rejectReasons(ctx, "orders rejected by providers", providerRejectsQuery, runID)
}

// providerRejectsQuery reads the run's rejected items from the notes the
// trigger of migration 00018 keeps (items_rejected), each checked against
// its item: what every run's end asks, at the cost of the few it finds.
const providerRejectsQuery = `SELECT i.reason, count(*), min(i.order_no) FROM items_rejected r
	JOIN items i ON i.order_no = r.order_no AND i.run_id = r.run_id
	WHERE r.run_id = $1 AND i.state = 'rejected' GROUP BY i.reason ORDER BY count(*) DESC, i.reason`

// HeldOfRun groups by reason the run's items of channel ch held with a
// reason starting with prefix (a Pay Protocol payment answered failed:
// held, not rejected, as it may still be paid late), for the reject gate.
// It reads the notes of the run's held items (items_held, migration
// 00034), each item by its key: what every run's gate asks, at the cost of
// the few it finds.
func (l *Ledger) HeldOfRun(ctx context.Context, runID int64, ch pipeline.Channel, prefix string) ([]RejectReason, error) {
	return l.rejectReasons(ctx, fmt.Sprintf("the orders held for %q", prefix), heldOfRunQuery, runID, string(ch), prefix)
}

// heldOfRunQuery reads the run's held items of a channel with a reason
// starting with a prefix from the notes the trigger of migration 00034
// keeps (items_held), each checked against its item.
const heldOfRunQuery = `SELECT i.reason, count(*), min(i.order_no) FROM items_held h
	JOIN items i ON i.order_no = h.order_no AND i.run_id = h.run_id
	WHERE h.run_id = $1 AND i.channel = $2 AND i.state = 'held' AND starts_with(i.reason, $3)
	GROUP BY i.reason ORDER BY count(*) DESC, i.reason`

// WaitingByChannel counts, by channel, the run's orders still waiting for
// their provider: recorded (not paid, held or carried yet) or not verified.
func (l *Ledger) WaitingByChannel(ctx context.Context, runID int64) (map[pipeline.Channel]int64, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT channel, count(*) FROM items
		WHERE run_id = $1 AND state IN ('recorded', 'unverified') GROUP BY channel`, runID)
	if err != nil {
		return nil, fmt.Errorf("count orders by channel: %w", err)
	}
	defer rows.Close()
	out := map[pipeline.Channel]int64{}
	for rows.Next() {
		var ch string
		var n int64
		if err := rows.Scan(&ch, &n); err != nil {
			return nil, err
		}
		out[pipeline.Channel(ch)] = n
	}
	return out, rows.Err()
}

// RecordSkipped records the channels run runID leaves out on purpose
// (--skip-channel) with orders still waiting, as its channel check finds
// them now, in place of what an earlier run of the date recorded: a run with
// a channel's provider configured, or one that names the channel as work
// left undone, records it no longer. The reports and `settle status` tell
// those orders (SkippedOfRun, SummaryLine.Skipped) from orders being paid.
func (l *Ledger) RecordSkipped(ctx context.Context, runID int64, channels []pipeline.Channel) error {
	names := make([]string, 0, len(channels))
	for _, ch := range channels {
		names = append(names, string(ch))
	}
	slices.Sort(names)
	if _, err := l.db.ExecContext(ctx, `UPDATE runs SET skipped_channels = $2 WHERE id = $1`, runID, pq.StringArray(names)); err != nil {
		return fmt.Errorf("record the channels left out on purpose: %w", err)
	}
	return nil
}

// Skipped is a run's orders of one channel and currency left out on
// purpose (--skip-channel), waiting: how many, and their seller share.
type Skipped struct {
	Channel  string `json:"channel"`
	Currency string `json:"currency"`
	Orders   int64  `json:"orders"`
	Seller   int64  `json:"seller_minor"`
}

// SkippedOfRun reads the run's orders still waiting of the channels its
// last channel check left out on purpose (RecordSkipped), by channel and
// currency: none once a run with the channel's provider configured checked
// its channels, or once they are settled.
func (r Reader) SkippedOfRun(ctx context.Context, runID int64) ([]Skipped, error) {
	rows, err := r.q.QueryContext(ctx, skippedOfRunQuery, runID)
	if err != nil {
		return nil, fmt.Errorf("read the orders left out on purpose of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []Skipped
	for rows.Next() {
		var s Skipped
		if err := rows.Scan(&s.Channel, &s.Currency, &s.Orders, &s.Seller); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// skippedOfRunQuery is SkippedOfRun's. Every run's end (its metrics) and
// settle status ask it, and a run leaves no channel out but by an
// operator's word: the run's items are not read at all when it left none
// out (the EXISTS, a one-time filter), where they were all read, a
// million items' index walk (about 100 ms) to find none.
const skippedOfRunQuery = `SELECT i.channel, i.currency, count(*), sum(i.seller_minor)
	FROM items i JOIN runs r ON r.id = i.run_id
	WHERE i.run_id = $1 AND EXISTS (SELECT 1 FROM runs s WHERE s.id = $1 AND s.skipped_channels <> '{}') AND ` + skippedSQL + `
	GROUP BY i.channel, i.currency ORDER BY i.channel, i.currency`

// InFlightByKind counts the run's effects sent and never answered (sent,
// unknown), by kind: none in the map when there are none.
func (l *Ledger) InFlightByKind(ctx context.Context, runID int64) (map[string]int64, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT kind, count(*) FROM effects
		WHERE run_id = $1 AND state IN ('sent', 'unknown') GROUP BY kind`, runID)
	if err != nil {
		return nil, fmt.Errorf("count the requests in flight: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var kind string
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, err
		}
		out[kind] = n
	}
	return out, rows.Err()
}

// Reextract drops what the run's extract and transform recorded - its
// snapshot, sellers, items and rejects, and what later stages derived from
// them without sending anything (planned effects never sent, trade files
// never uploaded, balances carried from its items, its mismatches) - so
// that a re-run reads the date again from the platform. In one
// transaction; the caller holds the run's lock.
//
// The transaction takes the ledger's carried-balances lock exclusively
// first (lockCarried: every seller's carry lock at once), so that its
// checks and deletes see every carried balance settled. A revenue share
// that read a balance with the run's held entries in it (PlanPayout,
// under its seller's carry lock) has netted them when the re-extract
// reads them, and the re-extract is refused; one asked for meanwhile
// waits for the commit and finds them gone (pipeline.ErrBalanceMoved).
// Before, a share planned beside the re-extract could pay an entry the
// re-extract deleted (read before, netted after the delete; or netted
// between the check and the delete, which took netted entries too), and
// the items it carried, read again, were paid again. Every run beside a
// re-extract - of any date: any change to a carried balance, a revenue
// share planned or failed, items carried, a clawback, a close - waits
// for its commit (about 1.6 s for a run of a million items). Nothing
// that holds a carry lock waits on the re-extract's rows: every carry
// lock is taken before any row the re-extract changes (a clawback takes
// its seller's before it marks its refund, one of the run's moved
// refunds maybe); share_totals' rows are locked by writers of trade
// files and payouts under no carry lock, or after it. No held entry
// netted into a payout is ever deleted: the delete takes open ones, and
// one left netted makes the re-extract fail, nothing dropped.
//
// It is refused, with a usage error naming what, once anything of the run
// reached a provider or another date: an effect of the run ever sent (any
// state but planned, or a send counted: an upload, a payout, a
// distribution, a receiver), a trade file uploaded, a balance carried from
// its items netted into a payout that is not one of its own unsent ones,
// closed by a person (CloseBalance) or held with another date past the
// provider's memory (HoldCarriedWithDate:
// for that date's share; held with the run's own date, it goes with its
// items, nothing sent under that hold), or a late refund of one of its
// orders worked out already. The entries of other runs held with the
// run's date stay held, those of the sellers the date no longer has too
// (a lost run of the date read them: only a run the guard does not hold
// releases them).
// Its carried-balances lock stays its transaction's first lock (the lock
// order, unchanged: it reads the run's date under it, then the entries).
func (l *Ledger) Reextract(ctx context.Context, runID int64) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		// Every seller's carry lock at once, before anything is read: the
		// checks below see every carried balance settled, and no revenue
		// share plans until the commit (one that read the balance with
		// the run's held entries in it has netted them, and is refused
		// below; one asked for meanwhile finds them gone).
		if err := l.lockCarried(ctx, tx); err != nil {
			return fmt.Errorf("reextract: %w", err)
		}
		var date time.Time
		if err := tx.QueryRowContext(ctx, `SELECT business_date FROM runs WHERE id = $1`, runID).Scan(&date); err != nil {
			return fmt.Errorf("reextract: %w", err)
		}
		// The mark of the entries held with the run's own date.
		own := carriedWithDate(pipeline.DateOf(date))
		var sent []string
		collect := func(what, q string, args ...any) error {
			rows, err := tx.QueryContext(ctx, q, append([]any{runID}, args...)...)
			if err != nil {
				return fmt.Errorf("reextract: %s: %w", what, err)
			}
			defer rows.Close()
			var names []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					return err
				}
				names = append(names, s)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if len(names) > 0 {
				example := names
				if len(example) > 3 {
					example = example[:3]
				}
				more := ""
				if len(names) > 3 {
					more = fmt.Sprintf(" and %d more", len(names)-3)
				}
				sent = append(sent, fmt.Sprintf("%d %s (%s%s)", len(names), what, strings.Join(example, ", "), more))
			}
			return nil
		}
		held := []any{carriedWithDatePrefix + "%", own} // $2 and $3 of the checks of entries held with a date
		checks := []struct {
			what, q string
			args    []any
		}{
			{"side effects sent", `SELECT kind || ' ' || subject || ' ' || state FROM effects
				WHERE run_id = $1 AND (sends > 0 OR state <> 'planned') ORDER BY id`, nil},
			{"trade files uploaded", `SELECT name || ' ' || status FROM trade_files
				WHERE run_id = $1 AND status <> 'BUILT' ORDER BY id`, nil},
			{"carried balances netted into a payout", `SELECT a.seller_id || ' ' || a.currency || ' into ' || a.netted_into FROM adjustments a
				WHERE a.run_id = $1 AND a.kind = 'held' AND a.netted_into <> '' AND a.netted_into NOT LIKE $2 AND NOT EXISTS (
					SELECT 1 FROM effects e WHERE e.run_id = $1 AND e.subject = a.netted_into AND e.sends = 0 AND e.state = 'planned')
				  AND NOT EXISTS (SELECT 1 FROM adjustments k WHERE k.kind = 'close' AND k.subject = a.netted_into)
				ORDER BY a.id`, held[:1]},
			// Closed by a person (settle sellers close): read again, the
			// entries the close netted would be dropped, and the items
			// they carried carried anew, open for the seller's next share.
			{"carried balances closed (settle sellers close)", `SELECT a.seller_id || ' ' || a.currency || ' by ' || a.netted_into FROM adjustments a
				WHERE a.run_id = $1 AND a.kind = 'held' AND a.netted_into <> ''
				  AND EXISTS (SELECT 1 FROM adjustments k WHERE k.kind = 'close' AND k.subject = a.netted_into)
				ORDER BY a.id`, nil},
			// Held with another date past the provider's memory (its run
			// held the seller's orders: HoldCarriedWithDate), for that
			// date's share alone, which a run the ledger lost may have
			// sent netting them: read again, they would be dropped, and
			// the items they carried carried anew, open for any date's
			// share. Held with the run's own date they go with its items
			// (nothing was sent under that hold).
			{"carried balances held with another date past the provider's memory", `SELECT a.seller_id || ' ' || a.currency || ' with ' || a.netted_date
				FROM adjustments a WHERE a.run_id = $1 AND a.kind = 'held' AND a.netted_into LIKE $2 AND a.netted_into <> $3
				ORDER BY a.id`, held},
			// A reprice's entries are of the date's orders, and its rules
			// are the date's: read again, its orders would be split anew
			// under other rules, the entries of the old ones standing.
			{"reprices of the date (settle reprice)", `SELECT 'reprice ' || p.id || ' under ' || p.rules_hash FROM reprices p
				JOIN runs r ON r.business_date = p.business_date WHERE r.id = $1 ORDER BY p.id`, nil},
			{"late refunds worked out on its orders", `SELECT lr.refund_no || ' of ' || lr.order_no || ' ' || lr.state FROM late_refunds lr
				WHERE lr.state <> 'pending' AND (lr.order_no IN (SELECT order_no FROM items WHERE run_id = $1)
					OR lr.order_no IN (SELECT order_no FROM rejects WHERE run_id = $1 AND order_no <> ''
						AND reason NOT LIKE 'already settled on %'))
				ORDER BY lr.refund_no`, nil},
			// The refunds of orders the platform moved to this date, worked
			// out from this run's rows rejected as already settled: read
			// again, those rows may be gone, and the platform's own refund
			// then comes back through the late-refunds query and is taken
			// back a second time (found by a review).
			{"refunds of orders moved to this date clawed back", `SELECT lr.refund_no || ' ' || lr.state FROM late_refunds lr
				WHERE lr.run_id = $1 AND lr.refund_no LIKE 'settle:moved:%' AND lr.state = 'clawed' ORDER BY lr.refund_no`, nil},
			// Another date's run rejected these rows as settled by this
			// run: read again, an order (or transaction) this date no
			// longer holds would be settled nowhere (found by a review).
			{"rows another date rejected as settled by this run", `SELECT j.order_no || ' (' || r.business_date || ')' FROM rejects j JOIN runs r ON r.id = j.run_id
				WHERE j.run_id <> $1 AND j.reason LIKE '%already settled % by run ' || $1::text ORDER BY r.business_date, j.order_no`, nil},
		}
		for _, c := range checks {
			if err := collect(c.what, c.q, c.args...); err != nil {
				return err
			}
		}
		if len(sent) > 0 {
			return pipeline.Errorf(pipeline.KindUsage, "--reextract",
				"refused: this date's run already sent or settled what it read: %s; its data can no longer be read again (correct it with the provider and settle status)",
				strings.Join(sent, "; "))
		}
		for _, q := range []string{
			// Entries netted into the run's unsent payouts are open again.
			`UPDATE adjustments SET netted_into = '', netted_date = NULL
				WHERE netted_into <> '' AND netted_into IN (SELECT subject FROM effects WHERE run_id = $1)`,
			// Only the items that carry: a million-item run's others stay
			// as they are, not rewritten.
			`UPDATE items SET carry_id = NULL WHERE run_id = $1 AND carry_id IS NOT NULL`,
		} {
			if _, err := tx.ExecContext(ctx, q, runID); err != nil {
				return fmt.Errorf("reextract: %w", err)
			}
		}
		// Open ones alone (those netted into its own unsent payouts were
		// opened above; any other refused): one netted into a payout is
		// never deleted (checked below). And those held with its own date
		// (past the provider's memory: HoldCarriedWithDate), a hold of
		// what it read, nothing sent under it; the entries of other runs
		// held with the date stay held, for the date's share, those of
		// the sellers it no longer has too, until a run of it the guard
		// does not hold releases them.
		if _, err := tx.ExecContext(ctx, `DELETE FROM adjustments WHERE run_id = $1 AND kind = 'held' AND netted_into IN ('', $2)`, runID, own); err != nil {
			return fmt.Errorf("reextract: %w", err)
		}
		for _, q := range []string{
			// The intents of effects never sent go with them (the history
			// allows it only here, only for what never left).
			`SELECT set_config('settle.reextract', 'on', true) WHERE $1::bigint IS NOT NULL`,
			// Removing the run's files and payouts moves their sellers'
			// totals (share_totals' triggers), in the order the rows are
			// found: two re-extracts of dates that share sellers would
			// take those rows each in its own order, and could deadlock.
			// Both take them here first, in one order.
			`SELECT 1 FROM share_totals WHERE (seller_id, currency) IN (
				SELECT seller_id, currency FROM trade_files WHERE run_id = $1
				UNION SELECT split_part(subject, '/', 3), currency FROM effects WHERE run_id = $1 AND kind = 'revenue_share')
				ORDER BY seller_id, currency FOR NO KEY UPDATE`,
			`DELETE FROM effect_events WHERE effect_id IN (SELECT id FROM effects WHERE run_id = $1)`,
			`DELETE FROM effects WHERE run_id = $1`,
			`DELETE FROM trade_files WHERE run_id = $1`,
			`DELETE FROM payout_candidates WHERE run_id = $1`,
			`DELETE FROM mismatches WHERE run_id = $1`,
			`DELETE FROM items WHERE run_id = $1`,
			`DELETE FROM items_rejected WHERE run_id = $1`,
			`DELETE FROM items_held WHERE run_id = $1`,
			// Derived from its rows rejected as already settled, none
			// clawed back (checked above): the rows read again say anew.
			`DELETE FROM late_refunds WHERE run_id = $1 AND refund_no LIKE 'settle:moved:%'`,
			`DELETE FROM rejects WHERE run_id = $1`,
			`DELETE FROM run_totals WHERE run_id = $1`,
			`DELETE FROM source_rows WHERE run_id = $1`,
			`DELETE FROM run_sellers WHERE run_id = $1`,
			// The channels it left out were those of the items dropped:
			// the run's next channel check says which it leaves out now.
			`UPDATE runs SET stages_done = '{}', state = 'running', last_error = '', finished_at = NULL, skipped_channels = '{}',
				updated_at = now() WHERE id = $1`,
		} {
			if _, err := tx.ExecContext(ctx, q, runID); err != nil {
				return fmt.Errorf("reextract: %w", err)
			}
		}
		var kept string
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(min(seller_id || ' ' || currency || ' into ' || netted_into), '')
			FROM adjustments WHERE run_id = $1 AND kind = 'held'`, runID).Scan(&kept); err != nil {
			return fmt.Errorf("reextract: %w", err)
		}
		if kept != "" {
			return fmt.Errorf("reextract: a balance carried from the run's items is still netted (%s): nothing dropped", kept)
		}
		return nil
	})
}

// ItemsToSettle reports whether the run has items not settled yet
// (unverified, recorded, uploaded or held): a run done with such items
// left them on purpose (a channel skipped) or waits on a provider.
func (l *Ledger) ItemsToSettle(ctx context.Context, runID int64) (bool, error) {
	var open bool
	err := l.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM items WHERE run_id = $1
		AND state IN ('unverified', 'recorded', 'uploaded', 'held'))`, runID).Scan(&open)
	if err != nil {
		return false, fmt.Errorf("items to settle of run %d: %w", runID, err)
	}
	return open, nil
}

// ShardHealth is what the ledger says of a shard for the metrics an alert
// watches, whatever date the run reporting it settled.
type ShardHealth struct {
	// LastSuccess is when a run of the shard (any date) last finished in
	// state done with nothing for a person (a re-run whose reconcile found
	// something leaves its run done, with a note: not a success); zero
	// when none has. A later failed run of another date does not hide it.
	LastSuccess time.Time
	// Unsettled counts the shard's runs (one a date) not finished so:
	// failed, needing a person, stopped early or still running; shard 0
	// of a sharding counts those of every other sharding too. A
	// successful re-run of an older date leaves a failed newer one
	// counted, where the last success moves on.
	Unsettled int
	// OldestUnsettled is the earliest date of those (zero when none).
	OldestUnsettled pipeline.Date
	// SkippedOpen counts, by channel, the shard's orders of every date
	// still left out on purpose (--skip-channel): waiting, of a channel
	// the last channel check of their date's run left out (RecordSkipped),
	// as SkippedOfRun counts a run's. A date whose run left a channel out
	// is settled for Unsettled (its run done, no error); its orders stay
	// counted here until a run of that date with the channel's provider
	// configured checks its channels again and pays them. Only the
	// channels with such orders are in the map.
	SkippedOpen map[pipeline.Channel]int64
	// SkippedOpenOldest is, by channel, the earliest date of those orders
	// (the channels of SkippedOpen alone): which date to run again first.
	SkippedOpenOldest map[pipeline.Channel]pipeline.Date
}

// ShardHealth reads the shard's health from its runs (one row a date):
// its own, and shard 0's those of every other sharding too (speaksForSQL)
// for Unsettled, OldestUnsettled and SkippedOpen; LastSuccess is its own.
func (l *Ledger) ShardHealth(ctx context.Context, shard pipeline.Shard) (ShardHealth, error) {
	return l.ShardsHealth(ctx, []pipeline.Shard{shard})
}

// ShardsHealth is ShardHealth of several shards together, each run counted
// once (speaksForSQL): what a metrics file summing the groups of one
// invocation (a whole re-run of a sharded date that ended beyond its
// runs, a backfill across a change of sharding) says. Its LastSuccess is
// the newest of the shards' own; the file takes the oldest of the groups'.
func (l *Ledger) ShardsHealth(ctx context.Context, shards []pipeline.Shard) (ShardHealth, error) {
	var (
		h      ShardHealth
		last   sql.NullTime
		oldest sql.NullTime
	)
	idx, cnt := make(pq.Int64Array, len(shards)), make(pq.Int64Array, len(shards))
	for i, sh := range shards {
		idx[i], cnt[i] = int64(sh.Index), int64(max(sh.Count, 1))
	}
	err := l.db.QueryRowContext(ctx, `SELECT max(finished_at) FILTER (WHERE state = 'done' AND last_error = ''
			AND (shard_index, shard_count) IN (SELECT * FROM unnest($1::int[], $2::int[]))),
		count(*) FILTER (WHERE state <> 'done' OR last_error <> ''),
		min(business_date) FILTER (WHERE state <> 'done' OR last_error <> '')
		FROM runs r WHERE `+speaksForSQL, idx, cnt).Scan(&last, &h.Unsettled, &oldest)
	if err != nil {
		return ShardHealth{}, fmt.Errorf("read the shard's runs: %w", err)
	}
	h.LastSuccess = last.Time
	if oldest.Valid {
		h.OldestUnsettled = pipeline.DateOf(oldest.Time)
	}
	rows, err := l.db.QueryContext(ctx, skippedOpenQuery, idx, cnt)
	if err != nil {
		return ShardHealth{}, fmt.Errorf("read the shard's orders left out on purpose: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ch string
		var n int64
		var first time.Time
		if err := rows.Scan(&ch, &n, &first); err != nil {
			return ShardHealth{}, err
		}
		if h.SkippedOpen == nil {
			h.SkippedOpen = map[pipeline.Channel]int64{}
			h.SkippedOpenOldest = map[pipeline.Channel]pipeline.Date{}
		}
		h.SkippedOpen[pipeline.Channel(ch)] = n
		h.SkippedOpenOldest[pipeline.Channel(ch)] = pipeline.DateOf(first)
	}
	if err := rows.Err(); err != nil {
		return ShardHealth{}, fmt.Errorf("read the shard's orders left out on purpose: %w", err)
	}
	return h, nil
}

// speaksForSQL holds for a run r that the health of one of the shards
// (their indexes $1, their counts $2) counts: a run of the shard itself
// and, for shard 0 of a sharding (a whole run's is 0/1), a run of every
// other sharding - a date run before SETTLE_SHARDS changed, or run whole
// by hand beside an Indexed Job's nights - as the nightly run's
// missed-nights check names them (cmd/settle speaksFor). Counted by its
// own shard alone, such a date left unsettled was in no metric once the
// old sharding's Pushgateway groups were deleted (found by a review).
const speaksForSQL = `EXISTS (SELECT 1 FROM unnest($1::int[], $2::int[]) s(i, n)
	WHERE (r.shard_index = s.i AND r.shard_count = s.n) OR (s.i = 0 AND r.shard_count <> s.n))`

// skippedOpenQuery is ShardHealth's count of the shard's orders left out
// on purpose, every date's (skippedSQL, as SkippedOfRun's; of the runs
// speaksForSQL gives the shards, $1 and $2), and the earliest of their
// dates, by channel. Every run's end
// asks it. Its runs are found by runs_skipped (migration 00040), the few
// that left a channel out, not by a scan of the shard's runs (one a date,
// for years); their items by run (items_run_order), each run's read whole
// as SkippedOfRun reads it: no index of items may name state (migration
// 00018, HOT updates).
const skippedOpenQuery = `SELECT i.channel, count(*), min(r.business_date)
	FROM runs r JOIN items i ON i.run_id = r.id
	WHERE ` + speaksForSQL + ` AND r.skipped_channels <> '{}' AND ` + skippedSQL + `
	GROUP BY i.channel ORDER BY i.channel`

// RunRules is the rules file a run of a date split its items with
// (RulesFiles): Kept false for a run whose file was not kept (opened
// before migration 00030, or with no file), with its rules hash alone.
type RunRules struct {
	RunID     int64          `json:"run_id"`
	Shard     pipeline.Shard `json:"-"`
	ShardName string         `json:"shard"`
	RulesHash string         `json:"rules_hash"`
	Kept      bool           `json:"kept"`
	Name      string         `json:"name,omitempty"`
	FileHash  string         `json:"file_hash,omitempty"`
	Body      string         `json:"body,omitempty"`
}

// RulesFiles returns, for each run of d by shard, the rules file its
// transform stage split its items with (migration 00030).
func (r Reader) RulesFiles(ctx context.Context, d pipeline.Date) ([]RunRules, error) {
	rows, err := r.q.QueryContext(ctx, `
		SELECT r.id, r.shard_index, r.shard_count, r.rules_hash, f.file_hash IS NOT NULL,
		       coalesce(f.name, ''), coalesce(f.file_hash, ''), coalesce(f.body, '')
		FROM runs r LEFT JOIN rules_files f ON f.file_hash = r.rules_file
		WHERE r.business_date = $1 ORDER BY r.shard_count, r.shard_index`, d.String())
	if err != nil {
		return nil, fmt.Errorf("read the rules files of %s: %w", d, err)
	}
	defer rows.Close()
	var out []RunRules
	for rows.Next() {
		var rr RunRules
		var body []byte
		if err := rows.Scan(&rr.RunID, &rr.Shard.Index, &rr.Shard.Count, &rr.RulesHash, &rr.Kept, &rr.Name, &rr.FileHash, &body); err != nil {
			return nil, err
		}
		rr.ShardName, rr.Body = rr.Shard.String(), string(body)
		out = append(out, rr)
	}
	return out, rows.Err()
}
