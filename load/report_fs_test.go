package load

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// TestReportsAreReadableByTheirGroupAlone: the reports hold what each
// seller is paid. They were written 0600 (os.CreateTemp's mode), which no
// loader running as another user of the pod's fsGroup could read, under
// date directories of 0755 that every user could list. Now every report
// and the manifest are 0640 and a date's directory gives others nothing.
func TestReportsAreReadableByTheirGroupAlone(t *testing.T) {
	r := Reports{Dir: t.TempDir()}
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	writeSet(t, r, d, time.Now())
	entries, err := os.ReadDir(r.DateDir(d))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(reportNames) {
		t.Fatalf("%d files, want %d: %v", len(entries), len(reportNames), entries)
	}
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(r.DateDir(d), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != ReportFileMode {
			t.Errorf("%s: mode %v, want %v", e.Name(), fi.Mode().Perm(), ReportFileMode)
		}
	}
	fi, err := os.Stat(r.DateDir(d))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 || perm&^ReportDirMode != 0 {
		t.Errorf("%s: mode %v, want %v or narrower (the umask's)", r.DateDir(d), perm, ReportDirMode)
	}
	// A report written again over one of another mode takes the mode too.
	p := filepath.Join(r.DateDir(d), "sellers.csv")
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteSellers(d, func(func(pipeline.SellerLine) error) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != ReportFileMode {
		t.Errorf("sellers.csv written again: %v (%v), want %v", fi.Mode().Perm(), err, ReportFileMode)
	}
}
