package ledger_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/settlekit/settle/pipeline"
)

// sessionEnded returns lib/pq's error for a statement whose session the
// server ended (FATAL, "terminating connection due to administrator
// command": a restart, a failover, pg_terminate_backend; a hot standby's
// "terminating connection due to conflict with recovery" alike), as the
// platform's database gives it to the source query.
func sessionEnded(t *testing.T, url string) error {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var x bool
	err = db.QueryRow(`SELECT pg_terminate_backend(pg_backend_pid())`).Scan(&x)
	if err == nil {
		t.Fatal("the session that ended itself answered")
	}
	if !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("lib/pq's error for an ended session is %v (%T), not driver.ErrBadConn: the test no longer shows what it did", err, err)
	}
	return err
}

// TestExtractStopsWhenThePlatformsSessionEnds: the platform's database
// ended the session the day's orders were read on, mid-read. lib/pq's
// error for it is driver.ErrBadConn, which the extract stage handed on
// through the ledger's COPY on a connection with its transaction open:
// database/sql took it for the ledger connection's and, to close that,
// waited for the transaction to end - which its caller ends only once the
// COPY returned. The run hung at the extract stage for good (until the
// Job's deadline, no retry), where it is exit 1 and the next run reads the
// day again. Both ways of extracting: the stage alone (WriteSnapshot) and
// the pass with the transform (WriteDay).
func TestExtractStopsWhenThePlatformsSessionEnds(t *testing.T) {
	l, url := open(t)
	ended := sessionEnded(t, url)
	window := func(pipeline.Date) pipeline.Window { return pipeline.Window{} }
	for i, stage := range []func(src pipeline.Source, d pipeline.Date) pipeline.StageFunc{
		func(src pipeline.Source, d pipeline.Date) pipeline.StageFunc {
			return pipeline.ExtractStage(src, oneSeller{}, l, window)
		},
		func(src pipeline.Source, d pipeline.Date) pipeline.StageFunc {
			pass := pipeline.ExtractTransform(src, oneSeller{}, l, window,
				func(func(string) (pipeline.Seller, bool, error)) pipeline.Classifier { return classify(d) })
			return func(ctx context.Context, run *pipeline.Run) (string, error) {
				_, err := pass(ctx, run)
				return "", err
			}
		},
	} {
		d := pipeline.Date{Year: 2026, Month: 11, Day: 5 + i}
		run := openRun(t, l, d)
		src := rowsSource{rows: sourceRows(d, []row{{sp("A"), "10"}, {sp("B"), "20"}}), err: ended}
		done := make(chan error, 1)
		go func() {
			_, err := stage(src, d)(context.Background(), run)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ended) {
				t.Fatalf("way %d: %v, want the platform's error", i, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("way %d: the extract is still running a minute after the platform's session ended", i)
		}
		var n int
		if err := l.DB().Get(&n, `SELECT (SELECT count(*) FROM source_rows WHERE run_id = $1) + (SELECT count(*) FROM items WHERE run_id = $1)
			+ (SELECT count(*) FROM run_sellers WHERE run_id = $1) + (SELECT cardinality(stages_done) FROM runs WHERE id = $1)`, run.ID); err != nil || n != 0 {
			t.Fatalf("way %d: %d rows or stages recorded (%v)", i, n, err)
		}
		// The next read of the day records it.
		src.err = nil
		if _, err := stage(src, d)(context.Background(), run); err != nil {
			t.Fatalf("way %d: the read after: %v", i, err)
		}
		if err := l.DB().Get(&n, `SELECT count(*) FROM source_rows WHERE run_id = $1`, run.ID); err != nil || n != 2 {
			t.Fatalf("way %d: %d rows recorded by the read after (%v)", i, n, err)
		}
	}
}
