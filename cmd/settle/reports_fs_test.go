package main

import (
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

	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// TestReportsNotWrittenSayWhereAndWhatToDo: a reports volume that fails
// under the reports (full, read-only, a directory that cannot be made)
// failed the run with "write sellers.csv: ...: no space left on device"
// alone. The run still ends not 0 (1: the next run writes them), and now
// says which date's reports, in which directory, whether the set there is
// whole, and that settle report --date D writes them again; which it does,
// a whole set with its manifest. Faults that hold as root too: a report's
// name a directory (after the set is begun: no manifest, no temporary
// file left), and the date's directory a regular file (before: the last
// set is left as it was).
func TestReportsNotWrittenSayWhereAndWhatToDo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(40, 0)
	dateDir := filepath.Join(e.reports, testDate)
	orders := filepath.Join(dateDir, "orders.csv")
	if err := os.MkdirAll(orders, 0o755); err != nil {
		t.Fatal(err)
	}
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	for _, want := range []string{"the reports of " + testDate + " were not written in " + dateDir, "no manifest.csv there",
		"settle report --date " + testDate + " writes them again"} {
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("orders.csv a directory: exit %d, want 1 saying %q:\n%s", code, want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dateDir, load.ManifestName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a set written in part has a manifest: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dateDir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := os.Remove(orders); err != nil {
		t.Fatal(err)
	}
	if out, code := e.settle("report", "--date", testDate, "--out", e.reports); code != 0 {
		t.Fatalf("settle report: exit %d:\n%s", code, out)
	}
	e.checkManifest(testDate)
	e.checkReportsAgree(testDate)

	// Failing before the set is begun: the date's directory a file.
	ctx := context.Background()
	l, err := ledger.Open(ctx, e.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, _ := pipeline.ParseDate(testDate)
	w := reportWriter{reports: load.Reports{Dir: e.reports}}
	if err := os.Rename(dateDir, dateDir+".kept"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dateDir, []byte("in the way\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = w.write(ctx, l, d)
	for _, want := range []string{"the reports of " + testDate + " were not written in " + dateDir, "nothing written there",
		"settle report --date " + testDate + " writes them again"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("the date's directory a file: %v, want an error saying %q", err, want)
		}
	}
	if codeOf(err) != 1 {
		t.Errorf("exit %d, want 1", codeOf(err))
	}
}

// TestReportToADirectoryThatCannotBeWrittenIsExit2: settle report with
// the date's directory a file in its place (or one it may not write)
// ended exit 1, "a retry is safe", which every retry met the same until a
// person acted. As a run's, the directory is checked first: exit 2,
// naming --out and the directory; once it can be written, the reports
// are written.
func TestReportToADirectoryThatCannotBeWrittenIsExit2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(10, 0)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	out := filepath.Join(t.TempDir(), "out")
	dateDir := filepath.Join(out, testDate)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dateDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, code := e.settle("report", "--date", testDate, "--out", out)
	if code != 2 || !strings.Contains(got, "--out: "+dateDir+" cannot be written") {
		t.Fatalf("settle report, the date's directory a file: exit %d, want 2 naming it:\n%s", code, got)
	}
	if err := os.Remove(dateDir); err != nil {
		t.Fatal(err)
	}
	if got, code := e.settle("report", "--date", testDate, "--out", out); code != 0 {
		t.Fatalf("settle report once the directory can be written: exit %d:\n%s", code, got)
	}
	if _, err := os.Stat(filepath.Join(dateDir, load.ManifestName)); err != nil {
		t.Errorf("no whole set written: %v", err)
	}
}

// TestARunWritesOnlyInItsDirectories: in the deploy the root filesystem is
// read-only (readOnlyRootFilesystem) and settle runs as a user with no
// home: a run and settle report write under --out and --work-dir alone,
// never in the working directory, the temporary directory ($TMPDIR) or
// $HOME. Not parallel: it sets the process's environment and directory.
func TestARunWritesOnlyInItsDirectories(t *testing.T) {
	e := newEnv(t)
	e.seed(40, 0)
	sim := e.sim(nil, 30, nil, 1_000_000_000_00)
	watched := map[string]string{"working directory": t.TempDir(), "TMPDIR": t.TempDir(), "HOME": t.TempDir()}
	t.Setenv("TMPDIR", watched["TMPDIR"])
	t.Setenv("HOME", watched["HOME"])
	t.Chdir(watched["working directory"])
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if out, code := e.settle("report", "--date", testDate, "--out", e.reports); code != 0 {
		t.Fatalf("settle report: exit %d:\n%s", code, out)
	}
	for what, dir := range watched {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 0 {
			t.Errorf("the %s holds %v (%v), want nothing", what, entries, err)
		}
	}
	// The trade files were built in the work directory (and removed,
	// each accepted by Infinia), and the reports written where --out says.
	if fi, err := os.Stat(filepath.Join(e.reports, "work", testDate)); err != nil || !fi.IsDir() {
		t.Errorf("no date's directory under --work-dir: %v", err)
	}
	e.checkManifest(testDate)
}

// fullChild names, in a child test process, the directory writableDir is
// to check with a file size limit of 0.
const fullChild = "SETTLE_TEST_WRITABLE_FULL_DIR"

// TestAFullDirectoryIsNotWritable: a full volume still makes an empty file
// (an inode, no block), so writableDir, which made one, passed it, and the
// run moved the day's money before its reports found the volume full. A
// directory that takes no byte - here under a file size limit of 0
// (RLIMIT_FSIZE, in a child process: EFBIG as a full volume's ENOSPC, as
// root too) - is refused, and no file of the check is left.
func TestAFullDirectoryIsNotWritable(t *testing.T) {
	if dir := os.Getenv(fullChild); dir != "" {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 0, Max: 0}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("writableDir: %v\n", writableDir(dir, 0o755))
		return
	}
	t.Parallel()
	dir := t.TempDir()
	if err := writableDir(dir, 0o755); err != nil {
		t.Fatalf("a directory with room: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAFullDirectoryIsNotWritable$", "-test.count=1")
	cmd.Env = append(os.Environ(), fullChild+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "writableDir: write "+dir+"/.settle-write-check-") || !strings.Contains(string(out), "file too large") {
		t.Errorf("a directory that takes no byte, want it refused:\n%s", out)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("left in the directory: %v (%v)", entries, err)
	}
}

// TestADateDirectoryThatCannotBeWrittenIsRefusedFirst: the check of the
// reports looked at the reports directory alone; a date's directory that
// cannot be written there (one a person's settle report made as another
// user; here a regular file in its place, which holds as root too) passed,
// and the run moved the day's money before its reports failed (exit 1,
// every retry the same). It is exit 2, naming --out and the directory,
// before the ledger is opened.
func TestADateDirectoryThatCannotBeWrittenIsRefusedFirst(t *testing.T) {
	t.Parallel()
	e := newBareEnv(t)
	e.seed(10, 0)
	dateDir := filepath.Join(e.reports, testDate)
	if err := os.MkdirAll(e.reports, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dateDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := e.settle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	if code != 2 || !strings.Contains(out, "--out: "+dateDir+" cannot be written") {
		t.Errorf("the date's directory a file: exit %d, want 2 naming it:\n%s", code, out)
	}
	if n := e.count(`SELECT count(*) FROM pg_tables WHERE schemaname = 'settle'`); n != 0 {
		t.Errorf("the ledger was opened (%d tables), want it untouched", n)
	}
}

// TestShardsCheckingTheirDateDirectoryAtOnce: the shards of a date start
// together and check the date's directories on the shared volume at the
// same moment. The check made a missing directory and took it away after,
// at times the one another shard had just found or made and was about to
// write in: that shard's check failed, "no such file or directory" (exit
// 1), as could its reports after the money had moved. Checked at once by
// several, a missing directory passes every check, and none is left.
func TestShardsCheckingTheirDateDirectoryAtOnce(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 500 {
		dir := filepath.Join(root, "reports", fmt.Sprint(i))
		errs := make(chan error, 6)
		for range cap(errs) {
			go func() { errs <- writableDir(dir, load.ReportDirMode) }()
		}
		for range cap(errs) {
			if err := <-errs; err != nil {
				t.Fatalf("check %d of a directory checked at once by %d: %v", i, cap(errs), err)
			}
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the check left %s: %v", dir, err)
		}
	}
}

// TestReportsThatDoNotBalanceAreExit4: settle report wrote reports with a
// summary.csv line that does not balance (an item in a state the summary
// does not account for) and exited 0, where the run's reconcile stage
// ends 4 on the same line. It now writes them and ends 4 naming the line.
func TestReportsThatDoNotBalanceAreExit4(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed(10, 0)
	e.mustSettle("run", "--date", testDate, "--rules", e.rules, "--out", e.reports, skipAll)
	if out, code := e.settle("report", "--date", testDate, "--out", e.reports); code != 0 {
		t.Fatalf("settle report of a balanced date: exit %d:\n%s", code, out)
	}
	res, err := e.db.Exec(`UPDATE settle.items SET state = 'verified' WHERE order_no = (SELECT min(order_no) FROM settle.items WHERE seller_minor > 0)`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d items changed, want 1", n)
	}
	out, code := e.settle("report", "--date", testDate, "--out", e.reports)
	if code != 4 || !strings.Contains(out, "of their lines do not balance") || !strings.Contains(out, "summary.csv ") {
		t.Fatalf("settle report, a summary line that does not balance: exit %d, want 4 naming it:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(e.reports, testDate, load.ManifestName)); err != nil {
		t.Errorf("the reports were not written whole: %v", err)
	}
}
