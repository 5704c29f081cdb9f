package load

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"

	"github.com/settlekit/settle/pipeline"
)

// RunMetrics is what one run reports to Prometheus.
type RunMetrics struct {
	Date     pipeline.Date
	Shard    pipeline.Shard
	Duration time.Duration
	Items    int64
	Rejects  int64
	Totals   []pipeline.Totals
	Effects  map[string]map[pipeline.EffectState]int // kind -> state -> count
	// Skipped counts the run's orders still waiting of a channel it left
	// out on purpose (--skip-channel), by channel: every channel the
	// caller knows, 0 for one not left out, so that a Pushgateway's last
	// figure of a channel paid since is replaced.
	Skipped map[pipeline.Channel]int64
	// ExitCode is the run's documented exit code (0: finished, 4: needs a
	// person, ...).
	ExitCode int
	// NeedsPerson counts the subjects (orders, sellers, files, payouts)
	// the run left for a person.
	NeedsPerson int
	// FailedPayouts counts the money requests of the run's date and shard
	// whose latest attempt failed and whose money is still owed (what its
	// reconcile calls failed payouts: a failed attempt paid since by a
	// later one under a new key is not counted, where Effects still counts
	// it failed).
	FailedPayouts int64
	// LastSuccess is when a run of the shard last finished without error,
	// read from the ledger (zero: never): kept after a failed run, so an
	// alert on its age keeps working.
	LastSuccess time.Time
	// Unsettled counts the shard's runs (one a date) that have not
	// finished without error, and OldestUnsettled is the earliest of their
	// dates (zero: none), read from the ledger: a re-run of an older date
	// overwrites the shard's exit code and moves its last success, but a
	// newer date left failed stays counted here.
	Unsettled       int
	OldestUnsettled pipeline.Date
	// SkippedOpen counts the shard's orders of every date still left out
	// on purpose (--skip-channel; not settled since by a run of their date
	// with the channel's provider configured), by channel, read from the
	// ledger with the health: a date whose run left a channel out counts
	// as settled in Unsettled, and Skipped is the last run's date's alone,
	// so a channel skipped one night and forgotten showed nowhere the next.
	// Every channel the caller knows, 0 for one with none, as Skipped.
	SkippedOpen map[pipeline.Channel]int64
	// SkippedOpenOldest is, by channel, the earliest date of those orders
	// (zero: none), read with them: which date to run again first, where
	// SkippedOpen says only how many wait.
	SkippedOpenOldest map[pipeline.Channel]pipeline.Date
	// NoRun: the invocation opened no run of the shard (it failed before,
	// or ended worse than its runs: a night that finds nights missed). Only
	// its exit code, its date and the shard's health are reported; a
	// Pushgateway keeps the last run's other figures (POST replaces only
	// the families pushed).
	NoRun bool
	// NoHealth: the shard's health could not be read from the ledger. Its
	// gauges (last success, unsettled runs) are left out rather than
	// reported as "none unsettled".
	NoHealth bool
}

// Combine is the metrics of a date's shards run one after another by one
// process (a sharded date re-run as a whole), for the one textfile it
// writes: durations, counts, amounts, effects and orders left out on
// purpose summed, exitCode the process's, and the last success the oldest of the shards' (none while one
// of them never finished), so that an alert on its age fires while any
// shard lags; the unsettled runs and the orders left out on purpose still
// open summed, with the oldest of the unsettled runs' dates, and of each
// channel's orders left out (none when a shard's health is unknown: NoHealth), and NoRun when none of
// them ran. Its shard is theirs when they are all of one (the dates of a
// shard's backfill), else the whole date's.
func Combine(ms []RunMetrics, exitCode int) RunMetrics {
	c := RunMetrics{Shard: pipeline.Whole, ExitCode: exitCode, Effects: map[string]map[pipeline.EffectState]int{}, NoRun: len(ms) > 0}
	for _, m := range ms {
		for ch, n := range m.Skipped {
			if c.Skipped == nil {
				c.Skipped = map[pipeline.Channel]int64{}
			}
			c.Skipped[ch] += n
		}
	}
	at := map[[2]string]int{} // channel and currency -> index in c.Totals
	for i, m := range ms {
		c.Date = m.Date
		if i == 0 || (c.Shard != pipeline.Whole && m.Shard == c.Shard) {
			c.Shard = m.Shard
		} else {
			c.Shard = pipeline.Whole
		}
		c.NoRun = c.NoRun && m.NoRun
		c.NoHealth = c.NoHealth || m.NoHealth
		c.Duration += m.Duration
		c.Items += m.Items
		c.Rejects += m.Rejects
		c.NeedsPerson += m.NeedsPerson
		c.FailedPayouts += m.FailedPayouts
		for _, t := range m.Totals {
			k := [2]string{string(t.Channel), string(t.Currency)}
			j, ok := at[k]
			if !ok {
				j = len(c.Totals)
				at[k] = j
				c.Totals = append(c.Totals, pipeline.Totals{Channel: t.Channel, Currency: t.Currency})
			}
			sum := &c.Totals[j]
			sum.Orders += t.Orders
			sum.Gross += t.Gross
			sum.Refunded += t.Refunded
			sum.Commission += t.Commission
			sum.Seller += t.Seller
		}
		for kind, states := range m.Effects {
			if c.Effects[kind] == nil {
				c.Effects[kind] = map[pipeline.EffectState]int{}
			}
			for st, n := range states {
				c.Effects[kind][st] += n
			}
		}
		c.Unsettled += m.Unsettled
		for ch, n := range m.SkippedOpen {
			if c.SkippedOpen == nil {
				c.SkippedOpen = map[pipeline.Channel]int64{}
			}
			c.SkippedOpen[ch] += n
		}
		for ch, d := range m.SkippedOpenOldest {
			if c.SkippedOpenOldest == nil {
				c.SkippedOpenOldest = map[pipeline.Channel]pipeline.Date{}
			}
			if old := c.SkippedOpenOldest[ch]; !d.IsZero() && (old.IsZero() || d.Before(old)) {
				c.SkippedOpenOldest[ch] = d
			}
		}
		if !m.OldestUnsettled.IsZero() && (c.OldestUnsettled.IsZero() || m.OldestUnsettled.Before(c.OldestUnsettled)) {
			c.OldestUnsettled = m.OldestUnsettled
		}
		if i == 0 || (!c.LastSuccess.IsZero() && (m.LastSuccess.IsZero() || m.LastSuccess.Before(c.LastSuccess))) {
			c.LastSuccess = m.LastSuccess
		}
	}
	return c
}

// registry builds a fresh registry holding m's values, each series with
// the labels constant: a batch job reports gauges of its last run, not
// counters of a long-lived process.
func (m RunMetrics) registry(constant prometheus.Labels) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "settle", Name: name, Help: help, ConstLabels: constant}, labels)
		reg.MustRegister(g)
		return g
	}
	gauge("run_business_date", "Business date of the last run, as YYYYMMDD.").WithLabelValues().Set(yyyymmdd(m.Date))
	gauge("exit_code", "Exit code of the last run (0: done; 4: needs a person; see the README).").WithLabelValues().Set(float64(m.ExitCode))
	if !m.NoHealth {
		if !m.LastSuccess.IsZero() {
			gauge("last_success_timestamp_seconds", "When a run of this shard last finished without error (from the ledger).").WithLabelValues().Set(float64(m.LastSuccess.Unix()))
		}
		gauge("unsettled_runs", "Runs (a date of this shard each) not finished without error, from the ledger: failed, needing a person, stopped early or running.").WithLabelValues().Set(float64(m.Unsettled))
		gauge("oldest_unsettled_business_date", "Earliest business date among the unsettled runs, as YYYYMMDD (0: none).").WithLabelValues().Set(yyyymmdd(m.OldestUnsettled))
		if len(m.SkippedOpen) > 0 {
			open := gauge("skipped_orders_open", "Orders of this shard, every date's, still left unpaid on purpose (--skip-channel) and not settled since, by channel, from the ledger.", "channel")
			oldest := gauge("skipped_orders_open_oldest_business_date", "Earliest business date of those orders, by channel, as YYYYMMDD (0: none).", "channel")
			for ch, n := range m.SkippedOpen {
				open.WithLabelValues(string(ch)).Set(float64(n))
				oldest.WithLabelValues(string(ch)).Set(yyyymmdd(m.SkippedOpenOldest[ch]))
			}
		}
	}
	if m.NoRun {
		return reg
	}
	gauge("run_duration_seconds", "Wall time of the last run.").WithLabelValues().Set(m.Duration.Seconds())
	rows := gauge("orders", "Orders of the last run by outcome.", "outcome")
	rows.WithLabelValues("item").Set(float64(m.Items))
	rows.WithLabelValues("rejected").Set(float64(m.Rejects))
	amounts := gauge("amount_minor", "Amounts of the last run's items, in minor units.", "channel", "currency", "part")
	for _, t := range m.Totals {
		for part, v := range map[string]int64{"gross": t.Gross, "refunded": t.Refunded, "commission": t.Commission, "seller": t.Seller} {
			amounts.WithLabelValues(string(t.Channel), string(t.Currency), part).Set(float64(v))
		}
	}
	effects := gauge("effects", "Side effects (uploads, payouts) of the last run by kind and state.", "kind", "state")
	for kind, states := range m.Effects {
		for state, n := range states {
			effects.WithLabelValues(kind, string(state)).Set(float64(n))
		}
	}
	if len(m.Skipped) > 0 {
		skipped := gauge("skipped_orders", "Orders of the last run left unpaid on purpose (--skip-channel), waiting, by channel.", "channel")
		for ch, n := range m.Skipped {
			skipped.WithLabelValues(string(ch)).Set(float64(n))
		}
	}
	gauge("failed_payouts", "Money requests of the last run's date and shard whose latest attempt failed and whose money is still owed (its reconcile's failed payouts).").WithLabelValues().Set(float64(m.FailedPayouts))
	gauge("needs_person_subjects", "Subjects (orders, sellers, files, payouts) the last run left for a person.").WithLabelValues().Set(float64(m.NeedsPerson))
	return reg
}

// yyyymmdd is d as the number YYYYMMDD (0 for the zero date).
func yyyymmdd(d pipeline.Date) float64 {
	return float64(d.Year*10000 + int(d.Month)*100 + d.Day)
}

// PushMetrics sends m to a Pushgateway at gateway under job "settle",
// grouped by shard. The metrics of a run, its health known, replace the
// shard's group (PUT): a POST replaces only the families it pushes, and a
// family without a sample (the amounts and effects of a date with no
// orders) is not pushed, so the group kept the figures of the date run
// before under the new date. Those of an invocation that opened no run
// (NoRun), or whose health is unknown (NoHealth), are added (POST): the
// group keeps the last run's figures and health. Other groups are kept
// either way. Credentials in the URL (http://user:password@host) go as
// basic auth, never into an error: a failed push is logged.
func PushMetrics(ctx context.Context, hc *http.Client, gateway string, m RunMetrics) error {
	u, err := url.Parse(gateway)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return fmt.Errorf("push metrics: the Pushgateway's URL: %w", err)
	}
	user := u.User
	u.User = nil
	p := push.New(u.String(), "settle").Client(hc).Gatherer(m.registry(nil)).
		Grouping("shard", shardLabel(m.Shard))
	if user != nil {
		pass, _ := user.Password()
		p = p.BasicAuth(user.Username(), pass)
	}
	send := p.AddContext
	if !m.NoRun && !m.NoHealth {
		send = p.PushContext
	}
	if err := send(ctx); err != nil {
		return fmt.Errorf("push metrics to %s: %w", u.Redacted(), err)
	}
	return nil
}

// shardLabel is the value of the label shard of sh's metrics, "1-of-4":
// the Pushgateway's group, and the textfile's series of a shard of several.
func shardLabel(sh pipeline.Shard) string {
	return fmt.Sprintf("%d-of-%d", sh.Index, sh.Count)
}

// WriteMetricsFile writes m in the text format for node exporter's textfile
// collector, atomically (temporary file, then rename), readable by all
// (mode 0644): node exporter runs as another user. The series of a shard
// of several are labelled shard (shardLabel), as the Pushgateway's group
// labels them: node exporter refuses a series two files hold, and the
// shards of a date run on one machine each write theirs. A whole date's
// have no such label.
func WriteMetricsFile(path string, m RunMetrics) error {
	var constant prometheus.Labels
	if m.Shard.Count > 1 {
		constant = prometheus.Labels{"shard": shardLabel(m.Shard)}
	}
	families, err := m.registry(constant).Gather()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".settle-metrics-*")
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	defer os.Remove(f.Name())
	enc := expfmt.NewEncoder(f, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			f.Close()
			return fmt.Errorf("write metrics: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return os.Rename(f.Name(), path)
}
