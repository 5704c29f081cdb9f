package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// ErrLocked is returned (wrapped, KindLocked) when another process holds the
// run's lock.
var ErrLocked = errors.New("another settle process (a run of the date, or a resolve) holds the lock")

// RunStore is what the Runner needs of the ledger.
type RunStore interface {
	// Lock takes the run's exclusive lock on a dedicated connection and holds
	// it until release is called (or the process dies). It returns an error
	// wrapping ErrLocked at once if another process holds it.
	Lock(ctx context.Context, key RunKey) (release func() error, err error)
	// OpenRun returns the run for key, creating it (state running) when new,
	// and counts an attempt. created reports whether it was new. A resumed
	// run records p.RulesHash unless its transform stage is done: the hash
	// names the rules its items were split under. It refuses
	// (KindUsage) a new run of a date whose runs are in another sharding
	// (OtherSharding), and a resumed run configured with another provider
	// account (p.Accounts) than the one it sent requests of that kind from.
	OpenRun(ctx context.Context, key RunKey, p RunParams) (run *Run, created bool, err error)
	// CompleteStage records that stage s of the run is done. Idempotent.
	CompleteStage(ctx context.Context, runID int64, s Stage) error
	// FinishRun records the run's final state and the error that ended it, if any.
	FinishRun(ctx context.Context, runID int64, state RunState, lastErr string) error
}

// LockChecker is a RunStore that can tell cheaply whether the lock it
// took for a run still holds: its database session may end while the run
// works (terminated, a failover), and the lock with it. The Runner asks
// before each stage it runs, so that a run whose lock was lost stops
// before the next stage's work rather than at its first send or its end.
type LockChecker interface {
	// CheckLocks returns an error with ErrLockLost in its chain once a
	// lock the store holds was lost.
	CheckLocks(ctx context.Context) error
}

// StageFunc performs one stage of a run. It must be idempotent: after a crash
// the stage is run again from its start. It returns a one-line summary.
type StageFunc func(ctx context.Context, run *Run) (summary string, err error)

// Runner sequences the stages of a run: it takes the lock, opens or resumes
// the run, skips completed stages, runs the rest up to Until, and records the
// outcome.
type Runner struct {
	Store RunStore
	// Stages maps each stage to its implementation. A stage missing from the
	// map is not built in this version: the runner says so and goes on.
	Stages map[Stage]StageFunc
	// Passes maps a stage to a pass that does it and the stages after it,
	// through Pass.Through, at once: one pass over the data (extract and
	// transform: the day read, recorded and classified in one stream). The
	// runner takes a pass when the run is to go at least through Through
	// and none of the stages it covers is done; otherwise (a resumed run,
	// --until a stage inside the pass) it runs the stages one by one from
	// Stages, which must have each of them.
	Passes map[Stage]Pass
	// Repeat lists stages that run on every invocation even when done
	// (the reports: cheap, and they must show the latest state).
	Repeat map[Stage]bool
	// Gate, when set, is checked before each stage that sends anything
	// (upload, distribute) and is not done yet; its error stops the run.
	// Checked again before distribute, it also counts what the upload
	// stage found (payments a provider rejected).
	Gate func(ctx context.Context, run *Run) error
	// Preflight, when set, is called once per invocation at the start of
	// the first sending stage that runs (after the gate, before anything is
	// sent): a cheap authenticated call to each configured provider, so
	// that refused credentials stop the run before the first file or
	// payout goes out. Its error stops the run with its own kind (a
	// KindUsage error is exit 2).
	Preflight func(ctx context.Context) error
	// Reextract, when set, is called under the lock before the run is
	// opened: it drops what extract and transform of key's run recorded, if
	// there is one (refusing, with a KindUsage error, once anything of the
	// run was sent), so that both run again on the platform's current
	// data. A refusal leaves the run as it was: no attempt counted, its
	// state and what needs a person kept.
	Reextract func(ctx context.Context, key RunKey) error
	Log       *slog.Logger // one line per stage; every line carries the run, date and shard
	// Live, when set (a terminal), gets a live status line per stage
	// instead of progress log lines.
	Live io.Writer
	Now  func() time.Time
}

// Pass performs several consecutive stages that send nothing at once.
type Pass struct {
	Through Stage // the last stage the pass covers
	// Run does the stages from the pass's first through Through. Each stage
	// it finishes it records done itself, in that stage's own transaction;
	// it returns their summaries in order from the first: a prefix of the
	// stages it covers (the runner runs the rest one by one, so a pass may
	// leave a stage to its StageFunc, e.g. when its fast way does not fit
	// the day's data). Its error is that of the first stage not finished.
	Run func(ctx context.Context, run *Run) (summaries []string, err error)
}

// sends reports whether a stage has side effects outside the job.
func sends(s Stage) bool { return s == StageUpload || s == StageDistribute }

// Result is what a run did.
type Result struct {
	Run      *Run
	Ran      []Stage // stages executed by this invocation
	Skipped  []Stage // stages already done before this invocation
	NotBuilt []Stage // stages with no implementation in this version
}

// Execute runs key up to and including until.
func (r *Runner) Execute(ctx context.Context, key RunKey, p RunParams, until Stage) (*Result, error) {
	release, err := r.Store.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	defer release()

	if r.Reextract != nil {
		if err := r.Reextract(ctx, key); err != nil {
			return nil, err
		}
	}
	run, created, err := r.Store.OpenRun(ctx, key, p)
	if err != nil {
		return nil, err
	}
	res := &Result{Run: run}
	log := r.logger().With("run_id", run.ID, "date", key.Date.String(), "shard", key.Shard.String())
	log.Info("run opened", "attempt", run.Attempts, "new", created, "time_zone", run.TimeZone, "until", string(until))
	if !created && run.RulesHash != p.RulesHash {
		log.Warn("the rules changed since this run's transform stage; splits already recorded stand")
	}
	if r.Reextract != nil {
		log.Info("reading the date again: the run's snapshot, items and rejects were dropped")
		run.StagesDone, run.State = nil, RunRunning
	}
	preflown := false
	var attention, pending, earlier []error
	passed := map[Stage]bool{} // stages done by a pass of this invocation
	for _, st := range Stages {
		if st.Index() > until.Index() {
			break
		}
		if passed[st] {
			continue
		}
		if !run.Done(st) || r.Repeat[st] {
			if err := r.checkLock(ctx); err != nil {
				// Refused, the lock lost: the run's end is not its to record.
				return res, unrecorded(fmt.Errorf("before stage %s: %w", st, err), r.fail(run, st, err))
			}
		}
		if p, ok := r.Passes[st]; ok && r.canPass(run, st, p, until) {
			done, err := r.runPass(ctx, log, st, p, run)
			for _, s := range done {
				passed[s] = true
				res.Ran = append(res.Ran, s)
			}
			if err != nil {
				return res, err
			}
			if passed[st] {
				continue
			}
			// The pass finished nothing yet returned no error: the
			// stages run one by one.
		}
		if sends(st) && !run.Done(st) && r.Gate != nil {
			if err := r.Gate(ctx, run); err != nil {
				return res, unrecorded(err, r.fail(run, st, err))
			}
		}
		if run.Done(st) && !r.Repeat[st] {
			res.Skipped = append(res.Skipped, st)
			log.Info("done earlier", "stage", st)
			continue
		}
		fn := r.Stages[st]
		if sends(st) && fn != nil && !preflown && r.Preflight != nil {
			preflown = true
			if err := r.Preflight(ctx); err != nil {
				err = fmt.Errorf("before stage %s: %w", st, err)
				return res, unrecorded(err, r.fail(run, st, err))
			}
		}
		if fn == nil {
			res.NotBuilt = append(res.NotBuilt, st)
			log.Info("skipped, not built in this version: nothing sent", "stage", st)
			continue
		}
		start := r.now()
		summary, err := r.runStage(ctx, log.With("stage", st), st, fn, run)
		if err != nil && errors.Is(err, ErrStillProcessing) {
			// Work a provider had not decided when the wait was over (a
			// trade file still processing, say): the stage stays not
			// done, and a re-run resolves it by query. The later stages
			// go on with what is decided - they pay only what the
			// provider accepted - so that one file, payout or provider
			// still processing holds back no one else; the run ends 1.
			log.Warn("STILL PROCESSING: "+err.Error(), "stage", st, "summary", summary, "took", r.now().Sub(start).Round(time.Millisecond))
			pending = append(pending, fmt.Errorf("stage %s: %w", st, err))
			continue
		}
		if err != nil && KindOf(err) == KindNeedsPerson && onlyOfEarlierDates(err) {
			// A person must look at what concerns earlier dates alone
			// (a watcher's findings): the stage did the run's own work,
			// and the run is recorded as that work left it. The run
			// still ends needing a person.
			log.Warn("NEEDS A PERSON, of earlier dates: "+err.Error(), append([]any{"stage", st, "summary", summary, "took", r.now().Sub(start).Round(time.Millisecond)}, SubjectAttrs(err)...)...)
			earlier = append(earlier, fmt.Errorf("stage %s: %w", st, err))
			err = nil
		}
		if err != nil && KindOf(err) == KindNeedsPerson {
			// Finished what it safely could; a person must look. The stage
			// stays not done, so a re-run after the fix picks it up; the
			// later stages (the reports) still run.
			log.Warn("NEEDS A PERSON: "+err.Error(), append([]any{"stage", st, "summary", summary, "took", r.now().Sub(start).Round(time.Millisecond)}, SubjectAttrs(err)...)...)
			attention = append(attention, fmt.Errorf("stage %s: %w", st, err))
			continue
		}
		if err != nil {
			if np := StopProblems(err); np != nil {
				// What the stage had found for a person before what
				// stopped it (a provider refusing our credentials): said
				// as when it finishes, the run's last line saying what
				// stopped it.
				log.Warn("NEEDS A PERSON: "+np.Error(), append([]any{"stage", st, "summary", summary, "took", r.now().Sub(start).Round(time.Millisecond)}, SubjectAttrs(np)...)...)
			}
			return res, unrecorded(fmt.Errorf("stage %s: %w", st, err), r.fail(run, st, err))
		}
		if !run.Done(st) {
			if err := r.Store.CompleteStage(ctx, run.ID, st); err != nil {
				return res, err
			}
			run.StagesDone = append(run.StagesDone, st)
			res.Ran = append(res.Ran, st)
		}
		log.Info(summary, "stage", st, "took", r.now().Sub(start).Round(time.Millisecond))
	}
	if len(pending) > 0 {
		// Resumable (exit 1): what still processes comes first, then
		// what needs a person.
		all := errors.Join(append(append(pending, attention...), earlier...)...)
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		ferr := r.Store.FinishRun(fctx, run.ID, RunFailed, all.Error())
		return res, E(KindFailed, "run "+key.String(), unrecorded(all, ferr))
	}
	if len(attention) > 0 {
		attention = append(attention, earlier...)
		err := E(KindNeedsPerson, "run "+key.String(), errors.Join(attention...))
		// The stages that need a person stay not done, and the run failed;
		// when every stage is done (a re-run's reconcile found something)
		// the run is done, and the note says what needs a person.
		state := RunFailed
		if allDone(run) {
			state = RunDone
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		ferr := r.Store.FinishRun(fctx, run.ID, state, NeedsPersonNote+errors.Join(attention...).Error())
		return res, unrecorded(err, ferr)
	}
	// A run stopped before anything is sent is told what the gate will
	// say: data rejected beyond tolerance ends it as the whole run would
	// (exit 3), not with "all is well". Not recorded as a failure: the
	// stages it was asked for are done.
	if until.Index() < StageUpload.Index() && r.Gate != nil && run.Done(StageTransform) && !run.Done(StageUpload) {
		if err := r.Gate(ctx, run); err != nil {
			return res, err
		}
	}
	// Its work done, the run's end is recorded as the others are: bounded,
	// and not cancelled by a stop that came as its last stage ended (the
	// record failed, "context canceled", and the run, its every stage
	// done, was told its end is not recorded and left running).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	switch {
	case until == StageReconcile && len(res.NotBuilt) == 0:
		if err := r.Store.FinishRun(fctx, run.ID, RunDone, ""); err != nil {
			return res, unrecorded(fmt.Errorf("record the run's end: %w", err), err)
		}
		run.State = RunDone
	case run.LastError != "":
		// This invocation ended without error: an earlier one's error is
		// no longer the run's last word.
		if err := r.Store.FinishRun(fctx, run.ID, run.State, ""); err != nil {
			return res, unrecorded(fmt.Errorf("record the run's end: %w", err), err)
		}
	}
	run.LastError = ""
	if len(earlier) > 0 {
		// Recorded as its own work left it; the exit still says a person
		// must look.
		return res, E(KindNeedsPerson, "run "+key.String(), errors.Join(earlier...))
	}
	return res, nil
}

// checkLock returns the store's error when the run's lock was lost
// (LockChecker, ErrLockLost); nil when it holds, when the store cannot
// tell, or when the check itself failed otherwise (ctx done: the stage
// meets it as it would have).
func (r *Runner) checkLock(ctx context.Context) error {
	c, ok := r.Store.(LockChecker)
	if !ok {
		return nil
	}
	if err := c.CheckLocks(ctx); errors.Is(err, ErrLockLost) {
		return err
	}
	return nil
}

// canPass reports whether the pass p starting at st is to do its stages:
// the run goes through all of them, none is done and none sends.
func (r *Runner) canPass(run *Run, st Stage, p Pass, until Stage) bool {
	if p.Through.Index() <= st.Index() || p.Through.Index() > until.Index() {
		return false
	}
	for _, s := range Stages[st.Index() : p.Through.Index()+1] {
		if run.Done(s) || sends(s) {
			return false
		}
	}
	return true
}

// runPass runs the pass p starting at st and records the stages it
// finished; it returns them. Each is logged with its summary; the first
// with the pass's time, the others as done in it.
func (r *Runner) runPass(ctx context.Context, log *slog.Logger, st Stage, p Pass, run *Run) ([]Stage, error) {
	covered := Stages[st.Index() : p.Through.Index()+1]
	start := r.now()
	var summaries []string
	_, err := r.runStage(ctx, log.With("stage", st), st, func(ctx context.Context, run *Run) (string, error) {
		var err error
		summaries, err = p.Run(ctx, run)
		return "", err
	}, run)
	summaries = summaries[:min(len(summaries), len(covered))]
	var done []Stage
	for i, summary := range summaries {
		s := covered[i]
		if !run.Done(s) {
			if err := r.Store.CompleteStage(ctx, run.ID, s); err != nil {
				return done, err
			}
			run.StagesDone = append(run.StagesDone, s)
		}
		done = append(done, s)
		took := r.now().Sub(start).Round(time.Millisecond)
		if i > 0 {
			took = 0
		}
		log.Info(summary, "stage", s, "took", took, "pass", string(st)+".."+string(p.Through))
	}
	if err != nil {
		failed := covered[min(len(summaries), len(covered)-1)]
		return done, unrecorded(fmt.Errorf("stage %s: %w", failed, err), r.fail(run, failed, err))
	}
	return done, nil
}

// LoggedSubjects is how many subjects (orders, sellers, files, payouts) a
// log line that needs a person names in its subjects field, beside their
// count: a stage's NEEDS A PERSON line and a failed run's last line.
const LoggedSubjects = 3

// SubjectAttrs are the structured fields of a log line of err needing a
// person (a stage's NEEDS A PERSON line, a failed run's last line): its
// first LoggedSubjects subjects and their count (ProblemsOf), none when it
// names none. The message keeps them too (people
// grep it); a log search filters on the fields.
func SubjectAttrs(err error) []any {
	first, n := ProblemsOf(err, LoggedSubjects)
	if n == 0 {
		return nil
	}
	return []any{"subjects", first, "count", n}
}

// NeedsPersonNote starts a run's recorded last error when it is a note of
// what a person must look at (exit 4), not the error that stopped the run.
const NeedsPersonNote = "needs a person: "

// allDone reports whether every stage of the run is done.
func allDone(run *Run) bool {
	for _, st := range Stages {
		if !run.Done(st) {
			return false
		}
	}
	return true
}

// fail records a failed stage; the run stays resumable. The context may be
// cancelled already (SIGTERM), so the record gets a short context of its own.
// It returns the record's error (the ledger down, the lock lost).
func (r *Runner) fail(run *Run, st Stage, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Store.FinishRun(ctx, run.ID, RunFailed, fmt.Sprintf("stage %s: %v", st, err))
}

// ErrEndNotRecorded is in the chain of the error of a run whose end (its
// final state and error, FinishRun) the ledger could not record: its
// database failed, or the run's lock was lost (refused: another run of the
// date may hold it). The ledger shows the run as it last recorded it -
// its stages done, its state as at its start - not how it ended; what the
// operator is told after it must not say otherwise.
var ErrEndNotRecorded = errors.New("the run's end could not be recorded")

// unrecorded returns err, with ErrEndNotRecorded in its chain when the
// record of the run's end failed (finish not nil). Its words are err's.
func unrecorded(err, finish error) error {
	if finish == nil || err == nil {
		return err
	}
	return endNotRecorded{err}
}

type endNotRecorded struct{ err error }

func (e endNotRecorded) Error() string   { return e.err.Error() }
func (e endNotRecorded) Unwrap() []error { return []error{e.err, ErrEndNotRecorded} }

// progressEvery is the interval of a stage's progress lines when Live is
// not set.
const progressEvery = 5 * time.Second

// runStage runs one stage with its progress counted and logged.
func (r *Runner) runStage(ctx context.Context, log *slog.Logger, st Stage, fn StageFunc, run *Run) (string, error) {
	p := &Progress{}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // the live line is cleared before the stage's own line
	switch {
	case r.Live != nil:
		wg.Add(1)
		go func() { defer wg.Done(); p.live(rctx, r.Live, st) }()
	default:
		wg.Add(1)
		go func() { defer wg.Done(); p.report(rctx, log, progressEvery) }()
	}
	return fn(WithProgress(ctx, p), run)
}

func (r *Runner) logger() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Combine runs several stage functions as one stage, in order: their
// summaries are joined; problems that need a person are gathered from all of
// them; work left for the next run (ErrStillProcessing: a provider still
// processing, or not answering) lets the later ones go on with what was
// decided, and is returned (exit 1) with the problems once all are done;
// any other error stops at once (a configuration error, exit 2, with the
// earlier parts' problems for a person in its problems: stopBeside).
func Combine(fns ...StageFunc) StageFunc {
	return func(ctx context.Context, run *Run) (string, error) {
		var summaries []string
		var attention, pending []error
		for _, fn := range fns {
			s, err := fn(ctx, run)
			if s != "" {
				summaries = append(summaries, s)
			}
			if err != nil && errors.Is(err, ErrStillProcessing) && KindOf(err) == KindFailed && ctx.Err() == nil {
				// Left for the next run (a provider still processing, or
				// not answering): the later parts go on with what was
				// decided, as the runner's later stages do.
				pending = append(pending, err)
				continue
			}
			if err != nil && KindOf(err) != KindNeedsPerson {
				if errors.Is(err, ErrStillProcessing) && KindOf(err) != KindUsage && len(attention) > 0 {
					// Resumable, and saying what needs a person too (as
					// joinParts does).
					err = E(KindFailed, "", errors.Join(err, E(KindNeedsPerson, "", errors.Join(attention...))))
				}
				// A stop for our credentials (exit 2) keeps what the
				// earlier parts had found for a person.
				return strings.Join(summaries, "; "), stopBeside(err, attention)
			}
			if err != nil {
				attention = append(attention, err)
			}
		}
		if len(pending) > 0 {
			err := errors.Join(pending...)
			if len(attention) > 0 {
				err = errors.Join(err, E(KindNeedsPerson, "", errors.Join(attention...)))
			}
			return strings.Join(summaries, "; "), E(KindFailed, "", err)
		}
		if len(attention) > 0 {
			return strings.Join(summaries, "; "), E(KindNeedsPerson, "", errors.Join(attention...))
		}
		return strings.Join(summaries, "; "), nil
	}
}

// Concurrent runs stage functions that do not depend on each other (the
// chains of different providers) as one stage, at the same time: their
// summaries are joined in order; problems that need a person are gathered
// from all of them. Any other error stops the others - nothing new
// starts, requests in flight finish and are recorded - and is returned,
// except work still processing at a provider when a chain's wait was over
// (ErrStillProcessing), which lets the others finish: it is returned
// (exit 1, resumable) once all are done. So does a configuration error
// (KindUsage, exit 2: a provider refusing our credentials, or its host
// key not ours): it concerns the chain's provider alone, and each chain
// meets its own provider's refusal itself, at its first request. The
// others finish their work - another provider's sellers paid, and what
// they hold for a person or left still processing said with the refusal
// (joinParts) - and the
// refusal is returned once all are done. Before, a refusal of one
// provider's key cut the other providers' chains short: their sellers
// waited for the re-run, and their holds were said by no line of the
// run. Each counts its progress in a part of the stage's (Progress.Part).
func Concurrent(fns ...StageFunc) StageFunc {
	if len(fns) == 1 {
		return fns[0]
	}
	return func(ctx context.Context, run *Run) (string, error) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		summaries := make([]string, len(fns))
		errs := make([]error, len(fns))
		progress := ProgressFrom(ctx)
		var wg sync.WaitGroup
		for i, fn := range fns {
			wg.Add(1)
			pctx := WithProgress(cctx, progress.Part()) // each chain counts in a part of the stage's
			go func() {
				defer wg.Done()
				summaries[i], errs[i] = fn(pctx, run)
				if err := errs[i]; err != nil && KindOf(err) != KindNeedsPerson && KindOf(err) != KindUsage && !errors.Is(err, ErrStillProcessing) {
					cancel()
				}
			}()
		}
		wg.Wait()
		return joinParts(ctx, summaries, errs)
	}
}

// joinParts is the summary and error of a stage made of parts run at the
// same time (Concurrent, Beside): their summaries joined in order; a
// configuration error (exit 2) alone, or the parts' several joined (each
// its provider's: Concurrent lets the others finish) (the other parts'
// problems for a person in its problems: stopBeside), else any other error that stops the
// stage, then work still processing at a provider, then problems that need
// a person. A part canceled because another failed says nothing: the
// other says why.
func joinParts(ctx context.Context, summaries []string, errs []error) (string, error) {
	var joined []string
	for _, s := range summaries {
		if s != "" {
			joined = append(joined, s)
		}
	}
	summary := strings.Join(joined, "; ")
	var stopping, pending, attention []error
	for _, err := range errs {
		switch {
		case err == nil:
		case KindOf(err) == KindNeedsPerson:
			attention = append(attention, err)
		case errors.Is(err, ErrStillProcessing):
			pending = append(pending, err)
		case errors.Is(err, context.Canceled) && ctx.Err() == nil:
			// stopped because another part failed: that one says why
		default:
			stopping = append(stopping, err)
		}
	}
	switch {
	case len(stopping) > 0:
		var usage []error
		for _, err := range stopping {
			if KindOf(err) == KindUsage {
				usage = append(usage, err)
			}
		}
		// What the other parts left still processing at their provider
		// (and held for a person beside it: Combine joins them) is said
		// with the refusal too, by its words and subjects alone
		// (saidOnly): ErrStillProcessing in the stop's chain would have
		// the runner take the stop for work left (exit 1) and go on.
		// Dropped, a chain let finish beside the refusal had what it
		// left and held said by no line of the run.
		beside := attention
		for _, err := range pending {
			beside = append(beside, saidOnly{err})
		}
		switch len(usage) {
		case 0:
		case 1:
			// One line, exit 2; what the other parts had found for a
			// person goes with it (stopBeside).
			return summary, stopBeside(usage[0], beside)
		default:
			// Each part's provider refused it on its own: each is
			// said (main prints a configuration error on one line).
			return summary, stopBeside(E(KindUsage, "", errors.Join(usage...)), beside)
		}
		if len(stopping) == 1 {
			return summary, stopping[0]
		}
		return summary, errors.Join(stopping...)
	case len(pending) > 0 && len(attention) > 0:
		// Resumable (exit 1), and saying what needs a person too.
		return summary, E(KindFailed, "", errors.Join(errors.Join(pending...), E(KindNeedsPerson, "", errors.Join(attention...))))
	case len(pending) > 0:
		return summary, errors.Join(pending...)
	case len(attention) > 0:
		return summary, E(KindNeedsPerson, "", errors.Join(attention...))
	}
	return summary, nil
}

// Beside runs main and, at the same time, helpers: work main does not
// need, whose leftovers a later stage does (a provider's checks beside the
// other providers' uploads, Provider.Prepare), so that a helper never holds the
// stage longer than main. Once main is done the helpers are stopped (their
// context canceled) and waited for; a helper stopped so returns what it
// did, and the cancellation is not an error of the stage, nor is a
// failure a helper returns once stopped so (a driver may report the stop
// as its own error: PostgreSQL's "canceling statement due to user
// request"), though a configuration error or a problem for a person is.
// Main is not
// stopped by a helper's error, which is the stage's once main is done.
// Summaries are joined, main's first, and errors as Concurrent's. Each
// counts its progress in a part of the stage's.
func Beside(main StageFunc, helpers ...StageFunc) StageFunc {
	if len(helpers) == 0 {
		return main
	}
	return func(ctx context.Context, run *Run) (string, error) {
		hctx, stop := context.WithCancel(ctx)
		defer stop()
		progress := ProgressFrom(ctx)
		summaries := make([]string, 1+len(helpers))
		errs := make([]error, 1+len(helpers))
		mctx := WithProgress(ctx, progress.Part())
		var wg sync.WaitGroup
		for i, fn := range helpers {
			wg.Add(1)
			pctx := WithProgress(hctx, progress.Part())
			go func() {
				defer wg.Done()
				summaries[1+i], errs[1+i] = fn(pctx, run)
				if err := errs[1+i]; err != nil && hctx.Err() != nil && ctx.Err() == nil && KindOf(err) == KindFailed && !errors.Is(err, context.Canceled) {
					// Stopped with main done: a failure it ends with is what
					// the stop made of its work (a database driver's own
					// "canceling statement"), and a later stage does the
					// rest. A configuration error or a problem for a person
					// is still the stage's.
					errs[1+i] = fmt.Errorf("%w: %w", context.Canceled, err)
				}
			}()
		}
		summaries[0], errs[0] = main(mctx, run)
		stop()
		wg.Wait()
		return joinParts(ctx, summaries, errs)
	}
}
