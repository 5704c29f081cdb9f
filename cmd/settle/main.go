// Command settle is the batch settlement job: it settles one business day of
// marketplace orders (extract, transform, upload, distribute, reconcile) and
// can be re-run safely for any past date. "settle --help" lists the
// commands; the README documents the contract and the exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/transform"
)

func main() {
	execWithFixedStackStart()
	releaseAfterMigrate = true
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := notifyStop(context.Background(), os.Interrupt, syscall.SIGTERM)
	if path := os.Getenv(heapProfileEnv); path != "" {
		go profileHeapPeaks(ctx, path)
	}
	stopCPU := func() {}
	if path := os.Getenv(cpuProfileEnv); path != "" {
		stopCPU = profileCPU(path)
	}
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	stopCPU()
	os.Exit(exitCode(err, os.Stderr))
}

// defaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set: half the 256 MiB the manifests request for the pod. Without
// it the heap may grow to twice what is live before a collection (GOGC),
// so a day's peak RSS follows its largest transient garbage rather than
// what the run holds. What the run holds stays well under it (PERFORMANCE.md,
// "Memory"); were it over, the runtime lets the heap grow past the
// limit rather than collect without end. GOMEMLIMIT (e.g. "off", or the
// pod's own figure) overrides it.
const defaultMemoryLimit = 128 << 20

// exitCode reports err (unless the JSON log's last line did) and maps it to
// the documented exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	// The error carries the providers' and the platform's words (a
	// refusal's reason, a payout's last error): no control sequence of
	// theirs reaches a terminal (as on stdout, controlSafe).
	stderr = controlSafe(stderr)
	if !errors.As(err, new(loggedError)) {
		if what, ps := fileProblems(err); ps != nil {
			// An invalid rules file: every problem, each where it is.
			fmt.Fprintf(stderr, "settle: %s\n", strings.TrimSpace(what))
			for _, p := range ps {
				fmt.Fprintf(stderr, "  %s\n", p)
			}
		} else if pipeline.KindOf(err) == pipeline.KindUsage {
			// Something to fix before running again (flags, configuration,
			// credentials): one line says what, however many subjects it hit.
			fmt.Fprintf(stderr, "settle: %s\n", oneLine(collapseRepeats(err.Error()), 1000))
			if notes := withNotes(err, ""); notes != "" {
				// The explanation of what the stage had held before it
				// stopped (pipeline.WithProblems), as other exits say it.
				fmt.Fprintln(stderr, "settle: "+notes)
			}
		} else {
			fmt.Fprintf(stderr, "settle: %s\n", collapseRepeats(err.Error()))
			if hint := withNotes(err, failureHint(err)); hint != "" {
				fmt.Fprintln(stderr, "settle: "+hint)
			}
		}
	}
	return codeOf(err)
}

// codeOf maps err to the documented exit code. It is the only place exit
// codes are decided.
func codeOf(err error) int {
	kind := pipeline.KindOf(err)
	switch {
	case err == nil:
		return 0
	case kind != pipeline.KindUsage && errors.Is(err, context.Canceled):
		return 1
	case kind == pipeline.KindFailed && (privilegeRefused(err) || readOnlyRefused(err) && errors.Is(err, errReadOnlySetting)):
		return pipeline.KindUsage.ExitCode()
	}
	return kind.ExitCode()
}

// privilegeRefused reports whether err is PostgreSQL refusing the role a
// privilege (insufficient_privilege): a grant to make, which no retry
// gives (a ledger role without TEMP on its database failed every run's
// transform, exit 1, "a retry is safe").
func privilegeRefused(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "42501"
}

// readOnlyRefused reports whether err is PostgreSQL refusing a write as
// read-only (read_only_sql_transaction): the ledger's URL reaches a
// standby, or its role or database has default_transaction_read_only on.
// The second is a setting to change, exit 2 (it was exit 1, and every
// retry was refused the same way); the first is exit 1, as a failover's
// demoted primary is a standby for as long as its address still reaches
// it. whyReadOnly asks the server which, and marks err with the answer.
// A standby refuses some writes before they begin ("cannot set
// transaction read-write mode during recovery", 0A000): the same refusal.
func readOnlyRefused(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && (pe.Code == "25006" || pe.Code == "0A000" && strings.Contains(pe.Message, "during recovery"))
}

var (
	// errLedgerStandby marks a write refused as read-only by a ledger
	// server in recovery (whyReadOnly): exit 1, hintStandby.
	errLedgerStandby = errors.New("the ledger's server is a standby, in recovery")
	// errReadOnlySetting marks one refused by a server out of recovery
	// whose default_transaction_read_only is on for settle's session:
	// exit 2, hintReadOnly.
	errReadOnlySetting = errors.New("the ledger's server is a primary, but default_transaction_read_only is on for this role or database")
	// errReadOnlyPassed marks one refused by a server that, asked after
	// it, takes writes, or could not be asked: exit 1, hintReadOnlyPassed.
	errReadOnlyPassed = errors.New("asked after it, the ledger's server takes writes, or did not answer")
)

// maxProblemsShown bounds the problems of a rules file an error lists.
const maxProblemsShown = 25

// fileProblems returns the problems of an invalid rules file that err
// holds when there are several (transform.RuleError, each naming its line
// and field), at most maxProblemsShown and then a count of the rest, and
// what err says before them ("read rules: "); no problems when err is not
// such an error or holds one. Every one is a thing to fix: a usage error
// cut to its first line (oneLine) had the operator fix the file one run
// at a time.
func fileProblems(err error) (what string, problems []string) {
	var re *transform.RuleError
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &re) || !errors.As(err, &joined) {
		return "", nil
	}
	for _, e := range joined.Unwrap() {
		problems = append(problems, e.Error())
	}
	if len(problems) < 2 {
		return "", nil
	}
	what = strings.TrimSuffix(err.Error(), joined.(error).Error())
	if len(problems) > maxProblemsShown {
		n := len(problems) - maxProblemsShown
		problems = append(problems[:maxProblemsShown:maxProblemsShown], fmt.Sprintf("... and %d more", n))
	}
	return what, problems
}

// oneLine is msg on one line of at most max bytes: its first line, with a
// count of the lines left out, cut at max.
func oneLine(msg string, max int) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	out := strings.TrimSpace(lines[0])
	if len(lines) > 1 {
		out += fmt.Sprintf(" (%d more lines not shown)", len(lines)-1)
	}
	if len(out) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "..."
	}
	return out
}

// collapseRepeats writes each line of msg once, in its first place, with
// how many times it came when more than once: one cause many workers hit
// (the ledger's database gone mid-stage: "dial tcp ...: connection
// refused" from each of them) is one line, not a screenful.
func collapseRepeats(msg string) string {
	lines := strings.Split(msg, "\n")
	count := make(map[string]int, len(lines))
	var order []string
	for _, l := range lines {
		if count[l] == 0 {
			order = append(order, l)
		}
		count[l]++
	}
	if len(order) == len(lines) {
		return msg
	}
	for i, l := range order {
		if n := count[l]; n > 1 {
			order[i] = fmt.Sprintf("%s (%d times)", l, n)
		}
	}
	return strings.Join(order, "\n")
}
