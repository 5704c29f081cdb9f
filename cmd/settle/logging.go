package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// jsonLogHandler writes one JSON object per line. Durations are written in
// seconds with decimals under the key name plus "_seconds" ("took_seconds":
// 1.234), not in nanoseconds: that is what dashboards and people read.
func jsonLogHandler(w io.Writer) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			secs := math.Round(a.Value.Duration().Seconds()*1000) / 1000
			return slog.Float64(a.Key+"_seconds", secs)
		}
		return a
	}})
}

// failureHint is what to do after err, when the error alone does not say:
// an interruption, or a failure a retry may get past (exit 1: the ledger's
// database or a provider gone mid-stage), after which the on-call asks
// whether money may have moved and whether running again is safe.
//
// A run whose end the ledger could not record (pipeline.ErrEndNotRecorded)
// is not told "state is recorded": its stages done are, how it ended is
// not, and settle status shows it stopped (or as it was). One whose lock
// was lost may have a second run of its date working beside it now. Nor
// is one that ended before its work did, past SETTLE_STOP_TIMEOUT or at
// a second signal (runStopping).
func failureHint(err error) string {
	switch {
	case errors.Is(err, pipeline.ErrEndNotRecorded) && errors.Is(err, pipeline.ErrLockLost):
		return hintLockLost
	case errors.Is(err, pipeline.ErrEndNotRecorded):
		return hintEndNotRecorded
	case errors.Is(err, errStopTimedOut):
		return hintStopTimedOut
	case errors.Is(err, errSecondSignal):
		return hintSecondSignal
	case errors.Is(err, context.Canceled):
		return "interrupted; state is recorded, run again to resume"
	case readOnlyRefused(err) && errors.Is(err, errReadOnlySetting):
		return hintReadOnly
	case readOnlyRefused(err) && errors.Is(err, errLedgerStandby):
		return hintStandby
	case readOnlyRefused(err) && errors.Is(err, errReadOnlyPassed):
		return hintReadOnlyPassed
	case recoveryConflict(err):
		return hintRecoveryConflict
	case privilegeRefused(err):
		return hintPrivilege
	case errors.As(err, new(hinted)):
		var g hinted
		errors.As(err, &g)
		return g.hint
	case codeOf(err) == 1:
		return "state is recorded; running the same command again is safe: a request whose answer was not recorded is asked about by its key before anything is sent again"
	}
	return ""
}

// withNotes is hint after the notes of err's problems (pipeline.NotesOf:
// why a date past a provider's memory is held, and what a person checks
// before giving --send-past-memory), each once: the run's end says them,
// the stages' lines and the error name the cause short. Said in each
// subject, the guard's explanation came three times in one run's output.
func withNotes(err error, hint string) string {
	notes := pipeline.NotesOf(err)
	if len(notes) == 0 {
		return hint
	}
	if hint != "" {
		notes = append(notes, hint)
	}
	return strings.Join(notes, ". ")
}

// hinted is an error with what to do in its case, when the exit code's
// hint would say otherwise: the reject gate's (exit 3; the code's hint says
// to read the date again with --reextract, which a date whose trade files
// went up refuses, and which changes nothing of orders held for a failed
// payment), and a nightly run's earlier dates left undone (exit 4; the
// code's hint says to run the date again, and the night's own date run
// again finishes none of them).
type hinted struct {
	error
	hint string
}

func (g hinted) Unwrap() error { return g.error }

// hintEarlierDates is the hint of a nightly run that names earlier dates
// missed or left undone (missedNights).
const hintEarlierDates = "earlier dates need a run of their own (running this night's date again finishes none of them): " +
	"each subject names the command, settle run --from D1 --to D2 for the dates never run, settle run --date D for a date left undone or a shard never run; " +
	"the next night ends 0 once they are run to their end"

// hintReadOnly is failureHint's word on a write the database refused as
// read-only (readOnlyRefused) for a setting (errReadOnlySetting).
const hintReadOnly = "the database refused a write as read-only: it is a primary, but default_transaction_read_only is on for settle's role or database " +
	"(SHOW default_transaction_read_only; ALTER ROLE ... / ALTER DATABASE ... RESET default_transaction_read_only); " +
	"turn the setting off for settle's role; the refused write was not made, and running again once the ledger takes writes is safe"

// hintStandby is failureHint's word on a write refused by a ledger server
// in recovery (errLedgerStandby).
const hintStandby = "the ledger's database URL (--database-url) reaches a standby (in recovery): a failover under way, its address still at the demoted primary, " +
	"or a read replica's address by mistake; the refused write was not made, state is recorded and running the same command again is safe (the Job's retry gets past a failover); " +
	"if it keeps failing, point the URL at the primary (with several hosts in the URL, add target_session_attrs=read-write)"

// hintReadOnlyPassed is failureHint's word on a write refused as read-only
// by a server that takes writes when asked after it, or could not be asked.
const hintReadOnlyPassed = "the database refused a write as read-only, and asked after it was neither a standby nor read-only by default (or did not answer): a failover that has ended? " +
	"the refused write was not made, state is recorded and running the same command again is safe"

// recoveryConflict reports whether err is a hot standby cancelling a
// statement for a conflict with the recovery it replays (40001 in its
// words; the platform's database read on a replica).
func recoveryConflict(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "40001" && strings.Contains(pe.Message, "conflict with recovery")
}

// hintRecoveryConflict is failureHint's word on recoveryConflict.
const hintRecoveryConflict = "the platform's database is a hot standby (a read replica) and cancelled settle's query for a conflict with the recovery it replays; " +
	"state is recorded and running the same command again is safe; if it recurs, give the standby hot_standby_feedback = on or a longer max_standby_streaming_delay, " +
	"or point --source-database-url at the primary"

// hintPrivilege is failureHint's word on a privilege PostgreSQL refused
// settle's role (privilegeRefused): PostgreSQL's message names the object,
// not what settle needs of it.
const hintPrivilege = "PostgreSQL refused settle's role a privilege on the object named: settle run's role needs SELECT, INSERT, UPDATE and DELETE on the ledger schema's tables, " +
	"USAGE on the schema and its sequences, and TEMP on the database; the platform's role SELECT on what the queries read; " +
	"settle migrate needs the role that owns the ledger's schema (README, \"What settle needs from its databases\"); nothing was written by the refused statement"

// The hints of a run whose end is not recorded (failureHint).
const (
	hintLockLost = "this run's lock on its date was lost (its database session ended) and its end is not recorded: " +
		"another run of the date may hold the lock now; settle status shows whether a process holds the date " +
		"(this run shows as stopped, or as it was before it started); once none does, running the same command again is safe: " +
		"a request whose answer was not recorded is asked about by its key before anything is sent again"
	hintStopTimedOut = "interrupted, and ended before its work did (" + stopTimeoutEnv + "): what the ledger had not recorded by then is not, " +
		"how the run ended among it (settle status shows it as it last recorded it); once no process holds the date, running the same command again is safe: " +
		"a request whose answer was not recorded is asked about by its key before anything is sent again"
	hintSecondSignal = "interrupted twice, and ended at the second signal before its work did: what the ledger had not recorded by then is not, " +
		"how the run ended among it (settle status shows it as it last recorded it); once no process holds the date, running the same command again is safe: " +
		"a request whose answer was not recorded is asked about by its key before anything is sent again"
	hintEndNotRecorded = "the ledger could not record how this run ended: settle status shows it stopped (or as it was before it started), " +
		"with the stages it recorded done; once the ledger answers again, running the same command again is safe: " +
		"a request whose answer was not recorded is asked about by its key before anything is sent again"
)

// exitHint is what to do after an exit code when failureHint has nothing
// more particular to say: the README's word for it ("Exit codes"), for the
// last JSON line of a failure, which may be all the on-call reads of a
// pod's log. Every failure's line carries a hint; those of exit 2, 3, 4
// and 75 had none.
func exitHint(code int) string {
	switch code {
	case 2:
		return "configuration: fix what the error names (a flag or variable, a file, a key, credentials a provider refused, a grant; README, Exit 2), " +
			"then run the same command again: a retry as it is fails the same way (the Job does not retry exit 2); what was done is skipped, nothing is sent twice"
	case 3:
		return "the platform's data was refused (rows rejected beyond --max-reject-ratio, or an amount out of range): the error and subjects name them, orders.csv and settle status list them; " +
			"fix the platform's data, then run the date again with --reextract, or raise --max-reject-ratio if the rejects are expected"
	case 4:
		return "a person is needed for what the error and subjects name (mismatches.csv and orders.csv name each case; README, Exit 4): " +
			"fix the cause (top up, settle it with the provider, settle resolve, bind the seller), then run the date again: what was done is skipped, the rest is paid"
	case 75:
		return "another run holds this date's lock: nothing was done; settle status shows the runs working; run the same command again once it has ended"
	}
	return "README, Exit codes: what the exit code means and what to do"
}

// loggedError is an error already reported as the run's last JSON log
// line: main maps it to the exit code without printing it again.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

// logFailure ends a failed run's JSON log with one line at level ERROR
// carrying the exit code, the date (or the range) settle run worked on and
// its shard (one of a sharded date's), the
// cause - the error, and when subjects need a person, the first few of
// them and their count - and a hint of what to do (failureHint, else
// exitHint). On a terminal (text logs) main prints the error
// instead.
func (c *config) logFailure(err error) error {
	if err == nil || !c.json {
		return err
	}
	msg := collapseRepeats(err.Error())
	what, problems := fileProblems(err)
	switch {
	case problems != nil:
		// An invalid rules file: the first problem in error, every one
		// (each where it is) in problems.
		msg = what + problems[0] + " (the others after it in problems)"
	case pipeline.KindOf(err) == pipeline.KindUsage:
		msg = oneLine(msg, 1000) // as on a terminal: one line says what to fix
	}
	attrs := []any{"exit_code", codeOf(err), "error", msg}
	if problems != nil {
		attrs = append(attrs, "problems", problems)
	}
	// Which date failed: a stage's error names its stage, not its date
	// (a backfill's and a sharded date's name theirs), and the pod's log
	// may be all the on-call has.
	switch n := len(c.dates); {
	case n == 1:
		attrs = append(attrs, "date", c.dates[0].String())
	case n > 1:
		attrs = append(attrs, "from", c.dates[0].String(), "to", c.dates[n-1].String())
	}
	if c.shardName != "" {
		attrs = append(attrs, "shard", c.shardName)
	}
	attrs = append(attrs, pipeline.SubjectAttrs(err)...) // as a stage's NEEDS A PERSON line names them
	hint := failureHint(err)
	if hint == "" {
		hint = exitHint(codeOf(err))
	}
	attrs = append(attrs, "hint", withNotes(err, hint))
	c.logger().Error("settle failed", attrs...)
	return loggedError{err}
}

// note tells the operator msg: a log line when logs are JSON (so the stream
// stays JSON), else a plain line on stdout.
func (c *config) note(msg string, attrs ...any) {
	if c.json {
		c.logger().Info(msg, attrs...)
		return
	}
	io.WriteString(c.stdout, msg+"\n")
}

// warn reports a failure that does not fail the run (what: "metrics"): a
// WARN log line when logs are JSON, else a line on stderr.
func (c *config) warn(what string, err error) {
	if c.json {
		c.logger().Warn(what+" failed", "error", err.Error())
		return
	}
	io.WriteString(c.stderr, "settle: "+what+": "+err.Error()+"\n")
}
