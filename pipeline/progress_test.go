package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// stopAfter is where report or live writes: it stops them (cancels their
// context) once it holds the lines wanted, so that a test waits for the
// lines, not for a time a loaded machine may let pass before a tick comes
// (130 ms for two lines 50 ms apart failed 2 runs in 600). The deadline
// beside it only ends a test whose lines never come.
type stopAfter struct {
	bytes.Buffer
	lines int    // lines (log lines, or live redraws) to wait for
	sep   []byte // what ends one
	stop  func()
}

func (w *stopAfter) Write(b []byte) (int, error) {
	n, err := w.Buffer.Write(b)
	if bytes.Count(w.Bytes(), w.sep) >= w.lines {
		w.stop()
	}
	return n, err
}

// progressContext is a context for report or live, stopped by the lines
// written to the writer it returns, or after 10 s when they never come.
func progressContext(t *testing.T, lines int, sep string) (context.Context, *stopAfter) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx, &stopAfter{lines: lines, sep: []byte(sep), stop: cancel}
}

func TestProgressLinesAndLiveDisplay(t *testing.T) {
	p := &Progress{}
	p.SetTotal(100)
	p.Add(40)
	ctx, logs := progressContext(t, 1, "\n")
	p.report(ctx, slog.New(slog.NewTextHandler(logs, nil)), 50*time.Millisecond)
	if !strings.Contains(logs.String(), "msg=progress done=40") || !strings.Contains(logs.String(), "total=100") || !strings.Contains(logs.String(), "left=") {
		t.Fatalf("progress lines: %s", logs.String())
	}
	ctx, live := progressContext(t, 1, "upload:")
	p.live(ctx, live, StageUpload)
	if !strings.Contains(live.String(), "upload: 40 of 100") || !strings.HasSuffix(live.String(), "\r\033[K") {
		t.Fatalf("live line: %q", live.String())
	}
}

// TestProgressOnlyGrowsAcrossPhases plays a stage of two phases (one
// provider's payouts, then another's): the operator must never see the units done
// or the total go down.
func TestProgressOnlyGrowsAcrossPhases(t *testing.T) {
	p := &Progress{}
	p.SetTotal(158)
	p.Add(129)
	first := p.snapshot(time.Second)
	p.Restart(772)
	p.Add(128)
	second := p.snapshot(2 * time.Second)
	if first.done != 129 || first.total != 158 {
		t.Fatalf("first phase %d/%d, want 129/158", first.done, first.total)
	}
	if second.done != 257 || second.total != 129+772 {
		t.Fatalf("second phase %d/%d, want 257/901", second.done, second.total)
	}
	p.SetTotal(10) // a smaller total for the phase never shrinks the stage's
	if got := p.snapshot(time.Second).total; got != 901 {
		t.Fatalf("total after a smaller SetTotal: %d, want 901", got)
	}
}

// TestProgressRateAndTimesInSeconds checks the fields of a JSON progress
// line: a rate under 1/s is not 0, durations are seconds with decimals.
func TestProgressRateAndTimesInSeconds(t *testing.T) {
	p := &Progress{}
	p.SetTotal(10)
	p.Add(1)
	s := p.snapshot(24 * time.Second)
	if s.perSecond != 0.0417 {
		t.Fatalf("per_second %v, want 0.0417", s.perSecond)
	}
	if s.left != 216*time.Second {
		t.Fatalf("left %v, want 3m36s", s.left)
	}
	if got := s.line(StageDistribute); got != "distribute: 1 of 10, 0.0417/s, 24s, 3m36s left" {
		t.Fatalf("live line %q", got)
	}
	if got := significant(1234.5, 3); got != 1230 {
		t.Fatalf("significant(1234.5, 3) = %v", got)
	}
}

// TestProgressOfChainsSideBySide runs two chains of a stage side by side,
// each counting its own payouts: the stage's line shows their sums, so the
// units done never pass the total.
func TestProgressOfChainsSideBySide(t *testing.T) {
	p := &Progress{}
	chain := func(n int64) StageFunc {
		return func(ctx context.Context, _ *Run) (string, error) {
			q := ProgressFrom(ctx)
			q.SetTotal(n)
			q.Add(n)
			return "", nil
		}
	}
	if _, err := Concurrent(chain(3), chain(40))(WithProgress(context.Background(), p), &Run{}); err != nil {
		t.Fatal(err)
	}
	if s := p.snapshot(time.Second); s.done != 43 || s.total != 43 {
		t.Fatalf("the stage shows %d of %d, want 43 of 43", s.done, s.total)
	}
	q := p.Part()
	q.Restart(7)
	q.Add(2)
	if s := p.snapshot(time.Second); s.done != 45 || s.total != 50 {
		t.Fatalf("with a third part under way: %d of %d, want 45 of 50", s.done, s.total)
	}
}

// TestProgressLinesSayWhatGetsNoAnswer: requests the engine sends that get
// no answer show in the stage's next progress line, at WARN, with their
// count and the last error; the line after, with none, is INFO again.
// Before, a provider answering "retry later" to every send for 10 minutes
// gave 120 INFO lines with the same count and nothing else.
func TestProgressLinesSayWhatGetsNoAnswer(t *testing.T) {
	p := &Progress{}
	s, f := newMemEffects(), &failingSender{}
	en := &Engine{Store: s, Sender: func(Effect) EffectSender { return f }, Poll: 10 * time.Millisecond, Wait: 50 * time.Millisecond}
	// Bounded: an engine that sends again past its wait never ends.
	ctx, stop := context.WithTimeout(WithProgress(context.Background(), p.Part()), 20*time.Second) // a chain's part, as distribute's
	defer stop()
	if _, err := en.Run(ctx, plan(t, s, 2)); err != nil {
		t.Fatal(err)
	}
	rctx, logs := progressContext(t, 2, "\n")
	p.report(rctx, slog.New(slog.NewTextHandler(logs, nil)), 50*time.Millisecond)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "level=WARN msg=progress") ||
		!strings.Contains(lines[0], "unanswered=") || !strings.Contains(lines[0], `last_error="permission denied"`) {
		t.Fatalf("first line after the failed sends: %q", lines)
	}
	if !strings.Contains(lines[1], "level=INFO msg=progress") || strings.Contains(lines[1], "unanswered") {
		t.Fatalf("a line with no failed send since: %q", lines[1])
	}
}
