package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// Progress counts the work of a stage, for the progress lines. Stages find
// theirs with ProgressFrom; a stage without one counts into a throwaway.
type Progress struct {
	done, total atomic.Int64
}

// Add counts n more units done.
func (p *Progress) Add(n int64) { p.done.Add(n) }

// SetTotal says how many units the stage has, when it knows.
func (p *Progress) SetTotal(n int64) { p.total.Store(n) }

// Restart begins a new phase of the stage: nothing done, of total.
func (p *Progress) Restart(total int64) {
	p.done.Store(0)
	p.total.Store(total)
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
	done, total, perSecond int64
	elapsed, left          time.Duration // left 0: unknown
}

func (p *Progress) snapshot(start time.Time) snapshot {
	s := snapshot{done: p.done.Load(), total: p.total.Load(), elapsed: time.Since(start)}
	rate := float64(s.done) / s.elapsed.Seconds()
	s.perSecond = int64(rate)
	if s.total > 0 && rate > 0 && s.done < s.total {
		s.left = time.Duration(float64(s.total-s.done) / rate * float64(time.Second))
	}
	return s
}

// report logs p every interval until ctx is done: units done, of how many,
// the rate, and the time left when the total is known.
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
		s := p.snapshot(start)
		attrs := []any{"done", s.done, "per_second", s.perSecond, "elapsed", s.elapsed.Round(time.Second)}
		if s.total > 0 {
			attrs = append(attrs, "total", s.total)
		}
		if s.left > 0 {
			attrs = append(attrs, "left", s.left.Round(time.Second))
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
		s := p.snapshot(start)
		line := fmt.Sprintf("%s: %d", stage, s.done)
		if s.total > 0 {
			line += fmt.Sprintf(" of %d", s.total)
		}
		line += fmt.Sprintf(", %d/s, %s", s.perSecond, s.elapsed.Round(time.Second))
		if s.left > 0 {
			line += fmt.Sprintf(", %s left", s.left.Round(time.Second))
		}
		fmt.Fprintf(w, "\r\033[K%s", line)
	}
}
