package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Kind classifies an error by what the operator (or the scheduler) should do
// about it. main maps kinds to exit codes and nothing else does.
type Kind int

// The error kinds, in the order of their exit codes.
const (
	KindFailed      Kind = iota // something failed; a retry is safe (exit 1)
	KindUsage                   // bad flags, configuration or rules file (exit 2)
	KindInput                   // input data rejected beyond tolerance (exit 3)
	KindNeedsPerson             // finished, but mismatches or failed payouts need a person (exit 4)
	KindLocked                  // another run holds the lock for this date (exit 75)
)

// ExitCode is the process exit code documented in the README for k.
func (k Kind) ExitCode() int {
	switch k {
	case KindUsage:
		return 2
	case KindInput:
		return 3
	case KindNeedsPerson:
		return 4
	case KindLocked:
		return 75
	}
	return 1
}

// Error is an error with a kind and the operation that failed.
type Error struct {
	Kind Kind
	Op   string // what was being done, e.g. "read rules"
	Err  error
}

func (e *Error) Error() string {
	if e.Op == "" {
		return e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// E wraps err with a kind and an operation. E of a nil error is nil.
func E(kind Kind, op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: kind, Op: op, Err: err}
}

// Errorf is E with a formatted message.
func Errorf(kind Kind, op, format string, args ...any) error {
	return &Error{Kind: kind, Op: op, Err: fmt.Errorf(format, args...)}
}

// ErrLockLost is in the chain of the error of a run whose lock ended
// while it worked (its database session was terminated, a failover):
// another run of its date may hold the lock now, so it sends nothing more.
// Like a configuration error it concerns every request, not the one that
// met it: the engine stops at it and returns it alone (stopsAll).
var ErrLockLost = errors.New("the run's lock was lost")

// ErrNotRecorded is in the chain of the error of an effect whose change
// its store could not record (the ledger's database refused, was down or
// ended the session): its send before it was sent (MarkSent), or the
// answer after. Nothing is sent that is not recorded first, and a ledger
// that cannot record concerns every request, so the engine stops at it
// (stopsAll). An answer not recorded leaves its effect sent, for the next
// run to ask about by its key.
var ErrNotRecorded = errors.New("the ledger could not record it")

// notRecorded is a store's error, wrapped so that ErrNotRecorded is in its
// chain; its words are the store's.
type notRecorded struct{ err error }

func (e notRecorded) Error() string   { return e.err.Error() }
func (e notRecorded) Unwrap() []error { return []error{e.err, ErrNotRecorded} }

// ErrNotRead is in the chain of the error of a request whose handling
// needed the ledger and could not read it: a status query, or a send,
// that must look up in the ledger what it asks about (the provider's account
// a payout pays). A ledger that cannot be read is the run's
// problem, not the request's: the engine and the loops over many stop at
// it and return it alone (stopsAll), rather than one line a payout, and
// no payout is held for a person for it.
var ErrNotRead = errors.New("the ledger could not be read")

// NotRead wraps a ledger read's error err so that ErrNotRead is in its
// chain (nil for nil); its words are err's.
func NotRead(err error) error {
	if err == nil {
		return nil
	}
	return notRead{err}
}

type notRead struct{ err error }

func (e notRead) Error() string   { return e.err.Error() }
func (e notRead) Unwrap() []error { return []error{e.err, ErrNotRead} }

// stopsAll reports whether err concerns every element of a loop, which
// then starts no more of them and returns err alone: a configuration
// error (KindUsage), a lost lock (ErrLockLost) or a store that could not
// record (ErrNotRecorded) or read (ErrNotRead).
func stopsAll(err error) bool {
	return KindOf(err) == KindUsage || errors.Is(err, ErrLockLost) || errors.Is(err, ErrNotRecorded) || errors.Is(err, ErrNotRead)
}

// KindOf returns the kind of the outermost *Error in err's chain, KindFailed
// when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindFailed
}

// Problems is the error of work that did what it safely could and left
// subjects (an order, a seller, a file, a payout) for a person: each entry
// of List names its subject and says what is wrong. It lets the last log
// line and the metrics show the first few subjects and how many there are.
type Problems struct {
	Summary string   // what the problems add up to; "" for "N problem(s)"
	List    []string // the subjects, each with what is wrong; may be the first few only
	Total   int      // how many subjects in all; 0 for len(List)
	// Rest says where the subjects a message does not list are found;
	// "" for the reports (the date's orders.csv, payouts.csv and
	// mismatches.csv hold them all). Subjects no report holds (the
	// dates a nightly run finds missed) say where to look instead.
	Rest string
	// Notes explain at length the cause its subjects share (WhyOf: why a
	// date past a provider's memory is held, and what a person does),
	// each once (Explain). Error leaves them out: the subjects name the
	// cause short, and the run's end says the notes once (NotesOf),
	// however many stages, dates or lines give them.
	Notes []string
	// tells are the subjects each listed line tells of, from the first
	// (AddMany counts several under one line; a line past them, of a List
	// given as a literal, tells of one).
	tells []int
}

// ProblemsListed is how many subjects a Problems message lists: a list
// longer than that is only counted.
const ProblemsListed = 10

// Count is the number of subjects.
func (p *Problems) Count() int { return max(p.Total, len(p.List)) }

// Add counts one more subject, and lists it while fewer than a message
// shows are listed: a day with a hundred thousand findings holds ten
// lines (the reports hold them all).
func (p *Problems) Add(s string) { p.AddMany(s, 1) }

// AddMany counts n more subjects (n > 0) under one line s, listed as Add
// lists it: several files with one cause, say, told once and counted each.
func (p *Problems) AddMany(s string, n int) {
	if n <= 0 {
		return
	}
	count := p.Count()
	if len(p.List) < ProblemsListed {
		p.tellsEach()
		p.List = append(p.List, s)
		p.tells = append(p.tells, n)
	}
	p.Total = count + n
}

// Lead counts n more subjects (n > 0) under one line s listed before the
// others, the last listed one giving way when the list is full (its
// subjects still counted): a cause that holds a whole currency's payouts
// is said first, not lost behind the sellers found before it.
func (p *Problems) Lead(s string, n int) {
	if n <= 0 {
		return
	}
	count := p.Count()
	p.tellsEach()
	p.List = append([]string{s}, p.List...)
	p.tells = append([]int{n}, p.tells...)
	if len(p.List) > ProblemsListed {
		p.List, p.tells = p.List[:ProblemsListed], p.tells[:ProblemsListed]
	}
	p.Total = count + n
}

// Explain adds err's explanation (WhyOf), if it has one, to the notes,
// once.
func (p *Problems) Explain(err error) {
	if why := WhyOf(err); why != "" && !slices.Contains(p.Notes, why) {
		p.Notes = append(p.Notes, why)
	}
}

// tellsEach gives every listed line its count: one for each line of a
// List given as a literal.
func (p *Problems) tellsEach() {
	for len(p.tells) < len(p.List) {
		p.tells = append(p.tells, 1)
	}
}

// told is how many subjects the lines a message lists tell of.
func (p *Problems) told() int {
	n := 0
	for i := range min(len(p.List), ProblemsListed) {
		if i < len(p.tells) {
			n += p.tells[i]
		} else {
			n++
		}
	}
	return n
}

// NeedsPerson is p as one error that needs a person (KindNeedsPerson,
// exit 4), or nil when it counts none.
func (p *Problems) NeedsPerson() error {
	if p.Count() == 0 {
		return nil
	}
	return E(KindNeedsPerson, "", p)
}

func (p *Problems) Error() string {
	msg := p.Summary
	if msg == "" {
		msg = fmt.Sprintf("%d problem(s)", p.Count())
	}
	for i, s := range p.List {
		if i == ProblemsListed {
			break
		}
		msg += "; " + s
	}
	if told := p.told(); p.Count() > told {
		msg += fmt.Sprintf("; ... %d more (%s)", p.Count()-told, cmp.Or(p.Rest, "see the reports"))
	}
	return msg
}

// WithProblems is err, a stage's error that stops the run (our
// credentials refused by a provider: exit 2), with problems, what the
// stage had found for a person before it stopped (a Problems'
// NeedsPerson, or nil): its words and kind are err's alone (a
// configuration error says in one line what to fix), and problems are in
// its tree (ProblemsOf, NotesOf, SubjectAttrs), which the runner says in
// the stage's NEEDS A PERSON line before it stops (StopProblems). Dropped,
// the night's log said nothing of them (the holds and refusals a person
// must look at), and the ledger's holds were told only by the re-run
// (found by a review). err alone when problems is nil.
func WithProblems(err, problems error) error {
	if err == nil || problems == nil {
		return err
	}
	return withProblems{err: err, problems: problems}
}

type withProblems struct{ err, problems error }

func (e withProblems) Error() string   { return e.err.Error() }
func (e withProblems) Unwrap() []error { return []error{e.err, e.problems} }

// StopProblems returns the problems WithProblems gave err, a stage's
// error that stops the run, nil when none: all of them, joined, when it
// gave several (a stage of parts adds the other parts' to the stopping
// part's: Combine, Concurrent, Beside), the stopping part's first.
func StopProblems(err error) error {
	var all []error
	eachStopProblems(err, func(p error) { all = append(all, p) })
	switch len(all) {
	case 0:
		return nil
	case 1:
		return all[0]
	}
	return E(KindNeedsPerson, "", errors.Join(all...))
}

// eachStopProblems calls fn with the problems of each WithProblems in
// err's tree (through wraps and joins), those it wraps before its own.
func eachStopProblems(err error, fn func(error)) {
	switch e := err.(type) {
	case nil:
	case withProblems:
		eachStopProblems(e.err, fn)
		fn(e.problems)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			eachStopProblems(inner, fn)
		}
	case interface{ Unwrap() error }:
		eachStopProblems(e.Unwrap(), fn)
	}
}

// stopBeside is err, a part's error that stops a stage of parts (a
// configuration error, exit 2: Combine, joinParts), with what the other
// parts had found for a person (attention, their KindNeedsPerson errors)
// added to its problems (WithProblems): the stage's NEEDS A PERSON line
// says them with the stopping part's, beside the parts' summaries it
// carries. Dropped, a seller or a channel another part held was said by
// no line of the run that stopped. err alone for any other error.
func stopBeside(err error, attention []error) error {
	if len(attention) == 0 || KindOf(err) != KindUsage {
		return err
	}
	return WithProblems(err, E(KindNeedsPerson, "", errors.Join(attention...)))
}

// saidOnly is err in its words and its Problems alone, not its chain: a
// part's work left for the next run (ErrStillProcessing) said beside a
// stop for our credentials (stopBeside in joinParts), whose kind and
// chain stay the stop's.
type saidOnly struct{ err error }

func (e saidOnly) Error() string { return e.err.Error() }
func (e saidOnly) Unwrap() []error {
	var ps []error
	eachProblems(e.err, func(p *Problems) { ps = append(ps, p) })
	return ps
}

// ProblemsOf gathers the Problems in err's tree (through wraps and joins):
// the first n subjects and the count of all of them.
func ProblemsOf(err error, n int) (first []string, count int) {
	eachProblems(err, func(p *Problems) {
		count += p.Count()
		for _, s := range p.List {
			if len(first) < n {
				first = append(first, s)
			}
		}
	})
	return first, count
}

// NotesOf gathers the notes of the Problems in err's tree (through wraps
// and joins), each once, in the order they come: what the run's end says
// once of the causes its subjects name short.
func NotesOf(err error) []string {
	var notes []string
	eachProblems(err, func(p *Problems) {
		for _, n := range p.Notes {
			if !slices.Contains(notes, n) {
				notes = append(notes, n)
			}
		}
	})
	return notes
}

// eachProblems calls fn with each Problems in err's tree, through wraps
// and joins, in order; not inside a Problems.
func eachProblems(err error, fn func(*Problems)) {
	switch e := err.(type) {
	case nil:
	case *Problems:
		fn(e)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			eachProblems(inner, fn)
		}
	case interface{ Unwrap() error }:
		eachProblems(e.Unwrap(), fn)
	}
}

// ErrOfEarlierDates is in the chain of a stage's error that needs a person
// for what concerns earlier dates alone (a watcher's findings: a rejected
// order of an earlier date paid late), not the run's own work: the runner,
// when every part of a stage's error is so marked, completes the stage,
// records the run as its own work left it (done, with no note of a
// person), and still ends needing a person (exit 4).
// Recorded on the run, such a finding kept the run listed as waiting on a
// person (settle_unsettled_runs, the nights' note) after the person had
// acted on it - reopened the order - with nothing of the run's own left
// (found by a review); the nights that follow ask again, and tell it
// again while it needs a person.
var ErrOfEarlierDates = errors.New("of earlier dates, not the run's own")

// OfEarlierDates marks err, a stage's KindNeedsPerson error, as
// concerning earlier dates alone (ErrOfEarlierDates); nil stays nil.
func OfEarlierDates(err error) error {
	if err == nil {
		return nil
	}
	return ofEarlierDates{err}
}

type ofEarlierDates struct{ error }

func (e ofEarlierDates) Unwrap() error        { return e.error }
func (e ofEarlierDates) Is(target error) bool { return target == ErrOfEarlierDates }

// onlyOfEarlierDates reports whether every part of err is marked
// OfEarlierDates: a stage's error joining one of the run's own (Combine)
// is the run's.
func onlyOfEarlierDates(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case ofEarlierDates:
		return true
	case interface{ Unwrap() []error }:
		parts := e.Unwrap()
		for _, p := range parts {
			if !onlyOfEarlierDates(p) {
				return false
			}
		}
		return len(parts) > 0
	case interface{ Unwrap() error }:
		return onlyOfEarlierDates(e.Unwrap())
	}
	return false
}
