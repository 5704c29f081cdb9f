package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestPruneRemovesNothingButSettlesOwnFiles: Prune follows no symbolic
// link out of the reports directory, and removes no file that is not
// settle's. A date's directory replaced by a link to another directory
// while Prune waited for the date's lock (it looked at the date by its
// path again under the lock) had that directory's orders.csv, manifest.csv
// and the rest removed; an operator's backup named ".orders.csv.bak"
// was taken for a temporary file of settle's and removed, and so was a
// link named manifest.csv.
func TestPruneRemovesNothingButSettlesOwnFiles(t *testing.T) {
	root := t.TempDir()
	r := Reports{Dir: filepath.Join(root, "reports")}
	now := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	cutoff := now.AddDate(0, 0, -30)
	old := cutoff.Add(-time.Hour)
	date := func(day int) pipeline.Date { return pipeline.Date{Year: 2026, Month: 10, Day: day} }
	// Outside the reports directory, settle's names, all old.
	outside := filepath.Join(root, "elsewhere")
	writeSet(t, Reports{Dir: outside}, date(9), old)
	elsewhere := Reports{Dir: outside}.DateDir(date(9))
	// Inside: a date kept (the run's own), which a link may point at.
	writeSet(t, r, date(4), old)
	writeSet(t, r, date(1), old)
	writeSet(t, r, date(2), old)
	writeSet(t, r, date(3), old)
	if err := os.Symlink(elsewhere, r.DateDir(date(5))); err != nil { // a date that is a link
		t.Fatal(err)
	}
	bak := filepath.Join(r.DateDir(date(2)), ".orders.csv.bak")
	crash := filepath.Join(r.DateDir(date(2)), ".orders.csv.4711")
	for _, p := range []string{bak, crash} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(r.DateDir(date(3)), ManifestName)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere, ManifestName), link); err != nil {
		t.Fatal(err)
	}
	// Under the lock of date 1, its directory is replaced by a link to the
	// directory outside; under date 2's, by a link to date 4's.
	swap := map[pipeline.Date]string{date(1): elsewhere, date(2): r.DateDir(date(4))}
	lock := func(d pipeline.Date) (func(), error) {
		if to, ok := swap[d]; ok {
			moved := filepath.Join(root, "moved-"+d.String())
			if err := os.Rename(r.DateDir(d), moved); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(to, r.DateDir(d)); err != nil {
				t.Fatal(err)
			}
		}
		return func() {}, nil
	}
	pruned, err := r.Prune(cutoff, func(d pipeline.Date) bool { return d == date(4) }, lock)
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, elsewhere, "orders.csv", "payouts.csv", "sellers.csv", "summary.csv", "mismatches.csv")
	checkManifest(t, r.DateDir(date(4)), "orders.csv", "payouts.csv", "sellers.csv", "summary.csv", "mismatches.csv")
	// Date 3 is pruned but for the link, which stays, and its target.
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("%s, a link and not settle's, is gone (%v)", link, err)
	}
	if _, err := os.Stat(filepath.Join(r.DateDir(date(3)), "orders.csv")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("date 3's orders.csv not pruned: %v (pruned %v)", err, pruned)
	}
	// The backup's case, without a swap: the date's own directory.
	swap = nil
	if err := os.Remove(r.DateDir(date(2))); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "moved-"+date(2).String()), r.DateDir(date(2))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(cutoff, func(d pipeline.Date) bool { return d == date(4) }, lock); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bak); err != nil {
		t.Errorf("the operator's %s: %v", filepath.Base(bak), err)
	}
	if _, err := os.Stat(crash); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a crash's %s not pruned: %v", filepath.Base(crash), err)
	}
	if _, err := os.Stat(filepath.Join(r.DateDir(date(2)), "orders.csv")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("date 2's orders.csv not pruned: %v", err)
	}
}

// fsizeChild names, in a child test process, the reports directory it
// writes with a file size limit.
const fsizeChild = "SETTLE_TEST_REPORTS_FSIZE_DIR"

// TestAFullDiskLeavesNoHalfReport: a disk that refuses the reports' bytes
// part way (here the file size limit, RLIMIT_FSIZE, in a child process:
// EFBIG as a full disk's ENOSPC, as root too) leaves the report before it
// under its name, byte for byte, no temporary file, and no manifest: a
// reader never takes half a report, nor the set, for whole. The error
// names the report and where it was written.
func TestAFullDiskLeavesNoHalfReport(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	rows := func(n int) func(func(pipeline.OrderLine) error) error {
		return func(fn func(pipeline.OrderLine) error) error {
			for i := range n {
				if err := fn(pipeline.OrderLine{OrderNo: fmt.Sprintf("O%07d", i), SellerID: "S1", Currency: "USD", Reason: "settled as the rules say"}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if dir := os.Getenv(fsizeChild); dir != "" {
		r := Reports{Dir: dir}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 16, Max: 1 << 16}); err != nil {
			t.Fatal(err)
		}
		if err := r.BeginSet(d); err != nil {
			t.Fatal(err)
		}
		_, err := r.WriteOrders(context.Background(), d, rows(10_000)) // some 1 MB
		fmt.Printf("error: %v\n", err)
		return
	}
	r := Reports{Dir: t.TempDir()}
	writeSet(t, r, d, time.Now())
	before, err := os.ReadFile(filepath.Join(r.DateDir(d), "orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAFullDiskLeavesNoHalfReport$", "-test.count=1")
	cmd.Env = append(os.Environ(), fsizeChild+"="+r.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "error: write orders.csv: write "+r.DateDir(d)+"/.orders.csv.") || !strings.Contains(string(out), "file too large") {
		t.Fatalf("child, want the error of orders.csv in %s:\n%s", r.DateDir(d), out)
	}
	after, err := os.ReadFile(filepath.Join(r.DateDir(d), "orders.csv"))
	if err != nil || !bytes.Equal(after, before) {
		t.Errorf("orders.csv after a failed write: %d bytes (%v), want the %d before", len(after), err, len(before))
	}
	entries, err := os.ReadDir(r.DateDir(d))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ManifestName || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("%s left after a failed write", e.Name())
		}
	}
}
