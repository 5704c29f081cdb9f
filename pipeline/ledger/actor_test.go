package ledger_test

import (
	"context"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestAResolutionSaysWhoAndStaysAsRecorded (found by an audit review): a
// resolution is recorded with the person the ledger's actor names and the
// database role it was written under, refused while no one is named, and
// neither changed nor removed afterwards - the database refuses it.
func TestAResolutionSaysWhoAndStaysAsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, url := open(t)
	key := pipeline.RunKey{Date: day, Shard: pipeline.Whole}
	run, _, err := l.OpenRun(ctx, key, pipeline.RunParams{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	writeDay(t, l, run, "A", 1, 1, false)
	if err := l.SetItemState(ctx, run.ID, "A0000", pipeline.ItemRecorded, pipeline.ItemRecorded, pipeline.HeldPrefix+"refused"); err != nil {
		t.Fatal(err)
	}
	settle := func(l *ledger.Ledger) error {
		_, _, err := l.SettleOutside(ctx, day, chInfinia, "A0000", "X/A0000", "nothing held", "unfrozen by hand, OPS-7", nil)
		return err
	}

	// A ledger naming no one records nothing.
	anon, err := ledger.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if err := settle(anon); err == nil || !strings.Contains(err.Error(), "no person named") {
		t.Fatalf("a resolution with no one named: %v, want refused", err)
	}
	if it, err := l.Item(ctx, day, "A0000"); err != nil || it.State != pipeline.ItemRecorded {
		t.Fatalf("after the refused resolution the item is %s (%v), want still held", it.State, err)
	}

	l.SetActor("alice@example.com")
	if err := settle(l); err != nil {
		t.Fatal(err)
	}
	var role string
	if err := l.DB().GetContext(ctx, &role, `SELECT session_user`); err != nil {
		t.Fatal(err)
	}
	got, err := l.Resolutions(ctx, day)
	if err != nil || len(got) != 1 {
		t.Fatalf("resolutions of %s: %v (%v), want the one", day, got, err)
	}
	if r := got[0]; r.Kind != ledger.KindSettledOutside || r.Actor != "alice@example.com" || r.DBRole != role || r.Note != "unfrozen by hand, OPS-7" {
		t.Fatalf("resolution %+v: want settled outside by alice@example.com under role %s, with the note", r, role)
	}
	if who := got[0].Who(); !strings.Contains(who, "alice@example.com") || !strings.Contains(who, role) {
		t.Errorf("Who() = %q, want the actor and the role", who)
	}

	for _, q := range []string{`UPDATE resolutions SET actor = 'mallory', note = 'x'`, `DELETE FROM resolutions`, `TRUNCATE resolutions`} {
		if _, err := l.DB().ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", q, err)
		}
	}
	if got, err := l.Resolutions(ctx, day); err != nil || len(got) != 1 || got[0].Actor != "alice@example.com" {
		t.Fatalf("resolutions after the refused rewrites: %+v (%v)", got, err)
	}
}
