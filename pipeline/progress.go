package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Progress counts the work of a stage, for the progress lines. Stages find
// theirs with ProgressFrom; a stage without one counts into a throwaway.
//
// A stage may have several phases (Restart): the counts then add up over
// the phases, so that neither the units done nor the total ever go down in
// the lines an operator reads. Work running side by side in a stage (the
// distribute chains) counts in parts of its own (Part), which add up.
type Progress struct {
	done  atomic.Int64
	mu    sync.Mutex
	base  int64       // units done when the current phase began
	tot   int64       // total over the phases so far (0: unknown)
	parts []*Progress // counting beside this one: added to it

	// Requests sent since the last line that got no answer (a provider
	// down, or answering "retry later"), and the last one's error: a
	// stage waiting on a provider that does not answer says so in its
	// progress lines, rather than showing the same count for minutes.
	unanswered int64
	lastError  string

	// awaiting is how many requests were sent and wait on the provider's
	// outcome (an effect engine's pending ones): a stage whose thousands of
	// revenue shares are PROCESSING showed "0 of 3000" for minutes, as if
	// it were stuck.
	awaiting atomic.Int64
}

// AddAwaiting counts n more requests sent whose outcome is awaited (n < 0:
// fewer), so that engines counting into one Progress add up.
func (p *Progress) AddAwaiting(n int) { p.awaiting.Add(int64(n)) }

// awaitingAll is AddAwaiting's count, parts included.
func (p *Progress) awaitingAll() int64 {
	p.mu.Lock()
	parts := p.parts
	p.mu.Unlock()
	n := p.awaiting.Load()
	for _, q := range parts {
		n += q.awaitingAll()
	}
	return n
}

// Unanswered counts a request that got no answer, its outcome unknown,
// with why (the send's error).
func (p *Progress) Unanswered(why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unanswered++
	p.lastError = why
}

// takeUnanswered returns the requests that got no answer since it was
// last called, parts included, and the last error it was told of, and
// starts counting again.
func (p *Progress) takeUnanswered() (n int64, last string) {
	p.mu.Lock()
	n, last, parts := p.unanswered, p.lastError, p.parts
	p.unanswered, p.lastError = 0, ""
	p.mu.Unlock()
	for _, q := range parts {
		if m, l := q.takeUnanswered(); m > 0 {
			n, last = n+m, l
		}
	}
	return n, last
}

// Part returns a Progress for work that runs beside other parts of the
// same stage: each part keeps its own phases and totals, and the stage's
// lines show their sums.
func (p *Progress) Part() *Progress {
	q := &Progress{}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.parts = append(p.parts, q)
	return q
}

// Counts returns the units done and the total (0: unknown), parts
// included: what the stage's next progress line says.
func (p *Progress) Counts() (done, total int64) {
	p.mu.Lock()
	total, parts := p.tot, p.parts
	p.mu.Unlock()
	done = p.done.Load()
	for _, q := range parts {
		d, t := q.Counts()
		done, total = done+d, total+t
	}
	return done, total
}

// Add counts n more units done.
func (p *Progress) Add(n int64) { p.done.Add(n) }

// SetTotal says how many units the current phase has, when it knows. The
// stage's total never goes down.
func (p *Progress) SetTotal(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tot = max(p.tot, p.base+n)
}

// Restart begins a new phase of the stage, of total units. What earlier
// phases did stays counted.
func (p *Progress) Restart(total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base = p.done.Load()
	p.tot = max(p.tot, p.base+total)
}

type progressKey struct{}

// WithProgress returns ctx carrying p.
func WithProgress(ctx context.Context, p *Progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// ProgressFrom returns the Progress of ctx, or a new unused one.
func ProgressFrom(ctx context.Context) *Progress {
	if p, ok := ctx.Value(progressKey{}).(*Progress); ok {
		return p
	}
	return &Progress{}
}

// snapshot is the state of a Progress at one moment.
type snapshot struct {
	done, total   int64
	awaiting      int64         // sent, the outcome awaited
	perSecond     float64       // rounded to 3 significant digits
	elapsed, left time.Duration // left 0: unknown
}

func (p *Progress) snapshot(elapsed time.Duration) snapshot {
	done, total := p.Counts()
	s := snapshot{done: done, total: total, awaiting: p.awaitingAll(), elapsed: elapsed}
	if elapsed <= 0 {
		return s
	}
	rate := float64(s.done) / elapsed.Seconds()
	s.perSecond = significant(rate, 3)
	if s.total > 0 && rate > 0 && s.done < s.total {
		s.left = time.Duration(float64(s.total-s.done) / rate * float64(time.Second))
	}
	return s
}

// significant rounds x to n significant digits: 0.0417 stays 0.0417 (a
// slow rate is not 0), 1234.5 becomes 1230.
func significant(x float64, n int) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', n, 64), 64)
	return r
}

// attrs are the fields of a progress line. Durations are time.Duration: the
// JSON log handler writes them in seconds.
func (s snapshot) attrs() []any {
	attrs := []any{"done", s.done, "per_second", s.perSecond, "elapsed", s.elapsed.Round(time.Millisecond)}
	if s.total > 0 {
		attrs = append(attrs, "total", s.total)
	}
	if s.left > 0 {
		attrs = append(attrs, "left", s.left.Round(time.Second))
	}
	if s.awaiting > 0 {
		attrs = append(attrs, "awaiting", s.awaiting)
	}
	return attrs
}

// report logs p every interval until ctx is done: units done, of how many,
// the rate, and the time left when the total is known; and, at WARN, how
// many requests got no answer since the last line, with the last error.
func (p *Progress) report(ctx context.Context, log *slog.Logger, interval time.Duration) {
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		attrs := p.snapshot(time.Since(start)).attrs()
		if n, last := p.takeUnanswered(); n > 0 {
			// Said at WARN: the stage is not stuck, the provider is.
			log.Warn("progress", append(attrs, "unanswered", n, "last_error", last)...)
			continue
		}
		log.Info("progress", attrs...)
	}
}

// live redraws one status line on a terminal until ctx is done, then
// clears it.
func (p *Progress) live(ctx context.Context, w io.Writer, stage Stage) {
	start := time.Now()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(w, "\r\033[K")
			return
		case <-t.C:
		}
		fmt.Fprintf(w, "\r\033[K%s", p.snapshot(time.Since(start)).line(stage))
	}
}

// line is the live status line of stage.
func (s snapshot) line(stage Stage) string {
	line := fmt.Sprintf("%s: %d", stage, s.done)
	if s.total > 0 {
		line += fmt.Sprintf(" of %d", s.total)
	}
	line += fmt.Sprintf(", %s/s, %s", strconv.FormatFloat(s.perSecond, 'f', -1, 64), s.elapsed.Round(time.Second))
	if s.left > 0 {
		line += fmt.Sprintf(", %s left", s.left.Round(time.Second))
	}
	if s.awaiting > 0 {
		line += fmt.Sprintf(", %d sent awaiting an answer", s.awaiting)
	}
	return line
}
