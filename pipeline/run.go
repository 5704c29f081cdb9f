package pipeline

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Stage is one step of a settlement run, in the order of Stages.
type Stage string

// The stages of a run (DESIGN, top).
const (
	StageExtract    Stage = "extract"    // read the day's orders into the run's snapshot
	StageTransform  Stage = "transform"  // validate, compute splits, record items and rejects
	StageUpload     Stage = "upload"     // trade-detail files by SFTP, upload status
	StageDistribute Stage = "distribute" // revenue sharing and funds distribution
	StageReconcile  Stage = "reconcile"  // compare with the providers; write reports
)

// Stages lists every stage in execution order.
var Stages = []Stage{StageExtract, StageTransform, StageUpload, StageDistribute, StageReconcile}

// ParseStage returns the stage named s.
func ParseStage(s string) (Stage, error) {
	for _, st := range Stages {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown stage %q (want one of extract, transform, upload, distribute, reconcile)", s)
}

// Index is the position of s in Stages, -1 if unknown.
func (s Stage) Index() int {
	for i, st := range Stages {
		if st == s {
			return i
		}
	}
	return -1
}

// Shard selects a partition of the sellers: those whose FNV-1a hash of the
// seller id is Index modulo Count. The zero Shard is invalid; use Whole.
type Shard struct {
	Index int
	Count int
}

// Whole is the shard that owns every seller.
var Whole = Shard{Index: 0, Count: 1}

// ParseShard parses "I/N" with 0 <= I < N.
func ParseShard(s string) (Shard, error) {
	i, n, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, fmt.Errorf("shard %q: want I/N, e.g. 0/4", s)
	}
	idx, err1 := strconv.Atoi(i)
	cnt, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || cnt < 1 || idx < 0 || idx >= cnt {
		return Shard{}, fmt.Errorf("shard %q: want I/N with 0 <= I < N", s)
	}
	return Shard{Index: idx, Count: cnt}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Owns reports whether the seller belongs to this shard. Rows without a
// seller id belong to shard 0, so that each is rejected exactly once.
func (s Shard) Owns(sellerID string) bool {
	if s.Count <= 1 {
		return true
	}
	if sellerID == "" {
		return s.Index == 0
	}
	h := fnv.New64a()
	h.Write([]byte(sellerID))
	return int(h.Sum64()%uint64(s.Count)) == s.Index
}

// OwnsRow reports whether a source row belongs to this shard: its
// seller's shard; a row without a seller id, the shard its order number
// hashes to (shard 0 when it has none either), so that each is rejected
// exactly once and the rows of no seller are spread over the shards like
// the others. All given to shard 0, they counted against its part of the
// day alone: a day within --max-reject-ratio whole stopped shard 0's
// sellers (exit 3) for rows that concern no seller (found by a review).
func (s Shard) OwnsRow(sellerID, orderNo *string) bool {
	if sellerID != nil && *sellerID != "" {
		return s.Owns(*sellerID)
	}
	if orderNo == nil || *orderNo == "" {
		return s.Owns("")
	}
	return s.Owns("order:" + *orderNo)
}

// RunKey identifies a run: one per business date and shard.
type RunKey struct {
	Date  Date
	Shard Shard
}

func (k RunKey) String() string {
	if k.Shard.Count <= 1 {
		return k.Date.String()
	}
	return k.Date.String() + " shard " + k.Shard.String()
}

// count is the shard's number of shards, a whole day's being 1.
func (s Shard) count() int { return max(s.Count, 1) }

// A date is settled in one sharding: every run of it whole, or every run
// one of N shards of it. A run in another sharding would find every order
// the date's runs settled "already settled" and leave their unfinished work
// undone (the Runner's store refuses to open it). A run asked for the
// whole date (no --shard) of a date run in shards runs those shards, one
// after another: that is how a sharded date is re-run by hand.

// ShardsToRun is what a run asked for key should run, given the runs the
// ledger holds of key's date: key itself, unless key is the whole date and
// the date was run otherwise. A date run in N shards runs its N shards, in
// order (those never started too); a date run in more than one sharding
// (by a version before the rule) resumes each of its runs and opens none.
func ShardsToRun(runs []*Run, key RunKey) []RunKey {
	if key.Shard.count() > 1 || len(runs) == 0 {
		return []RunKey{key}
	}
	n := runs[0].Key.Shard.count()
	for _, r := range runs {
		if r.Key.Shard.count() != n {
			keys := make([]RunKey, len(runs))
			for i, r := range runs {
				keys[i] = r.Key
			}
			return keys
		}
	}
	keys := make([]RunKey, n)
	for i := range keys {
		keys[i] = RunKey{Date: key.Date, Shard: Shard{Index: i, Count: n}}
	}
	return keys
}

// OtherSharding says why key cannot be opened beside runs (the runs of its
// date, in the order of their number of shards), or returns nil: when key
// is among them, or they are all in its sharding.
func OtherSharding(runs []*Run, key RunKey) error {
	n := key.Shard.count()
	var counts []int
	ids := map[int][]string{}
	for _, r := range runs {
		c := r.Key.Shard.count()
		if c == n && r.Key.Shard.Index == key.Shard.Index {
			return nil
		}
		if ids[c] == nil {
			counts = append(counts, c)
		}
		ids[c] = append(ids[c], strconv.FormatInt(r.ID, 10))
	}
	var was []string
	for _, c := range counts {
		switch {
		case c == n:
		case c == 1:
			was = append(was, "whole (run "+strings.Join(ids[c], ", ")+")")
		default:
			was = append(was, fmt.Sprintf("in %d shards (runs %s)", c, strings.Join(ids[c], ", ")))
		}
	}
	if len(was) == 0 {
		return nil
	}
	how := "run it without --shard, SETTLE_SHARDS and JOB_COMPLETION_INDEX, which resumes each of its runs"
	switch c := counts[0]; {
	case len(counts) > 1:
	case c == 1:
		how = "run it without --shard, SETTLE_SHARDS and JOB_COMPLETION_INDEX"
	case n == 1:
		how = fmt.Sprintf("run it in those %d shards (--shard I/%d, or SETTLE_SHARDS=%d in the Indexed Job)", c, c, c)
	default:
		how = fmt.Sprintf("run it in those %d shards (--shard I/%d, or SETTLE_SHARDS=%d in the Indexed Job), or without --shard, which runs them one after another", c, c, c)
	}
	return fmt.Errorf("%s was run %s, and a date is settled in one sharding (in another, every order its runs settled would be rejected as already settled, and their unfinished work left undone): %s",
		key.Date, strings.Join(was, " and "), how)
}

// RunState is the state of a run as recorded in the ledger.
type RunState string

// Run states.
const (
	RunRunning RunState = "running"
	RunFailed  RunState = "failed"
	RunDone    RunState = "done"
)

// Run is one settlement run as recorded in the ledger.
type Run struct {
	ID         int64
	Key        RunKey
	State      RunState
	StagesDone []Stage
	TimeZone   string
	RulesHash  string
	ConfigHash string
	Attempts   int
	LastError  string
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

// Done reports whether stage s of the run has completed.
func (r *Run) Done(s Stage) bool {
	for _, d := range r.StagesDone {
		if d == s {
			return true
		}
	}
	return false
}

// RunParams are what a run records about how it was configured.
type RunParams struct {
	TimeZone string
	// RulesHash identifies the rules file (transform.Rules.Hash). The run
	// keeps the one its transform stage was done with (Store.OpenRun).
	RulesHash string
	// RulesName and RulesBody are the rules file as read (its base name
	// and bytes), kept with the run's rules hash: the rule each item names
	// ("rules.csv:3") is a line of it. Empty: no file to keep.
	RulesName  string
	RulesBody  []byte
	ConfigHash string
	// Accounts names, by effect kind, the provider account the run's
	// requests of that kind go to, as its settings give it (the provider's
	// own words: its merchant or app id): an idempotency key is known only
	// to the account it was sent to. Store.OpenRun refuses a resumed run whose account for
	// a kind differs from the one the run sent requests of it from, and
	// records the rest.
	Accounts map[string]string
	// NewAccounts lets a run send from another account for a kind than
	// the latest earlier date sent from (the accounts change for good
	// here): without it Store.OpenRun refuses a run that sent nothing of
	// the kind yet whose account differs.
	NewAccounts bool
	// SourceDB names the platform database the run reads from, as its
	// server names it ("" when it would not say: not judged). Store.OpenRun
	// refuses another than the date, or else the latest earlier date, read
	// from, unless NewSource.
	SourceDB  string
	NewSource bool
}
