package pipeline

import (
	"context"
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
		done, total := p.done.Load(), p.total.Load()
		elapsed := time.Since(start)
		rate := float64(done) / elapsed.Seconds()
		attrs := []any{"done", done, "per_second", int64(rate), "elapsed", elapsed.Round(time.Second)}
		if total > 0 {
			attrs = append(attrs, "total", total)
			if rate > 0 && done < total {
				attrs = append(attrs, "left", (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second))
			}
		}
		log.Info("progress", attrs...)
	}
}
