// Package load holds settle's side effects out of the process that are
// not a provider's own: the report writers (CSV, written under a temporary
// name and renamed into place) and the pruning of old dates' reports, the
// SFTP uploader
// (SFTP, SFTPSession: host key pinned by known_hosts, temporary name,
// posix-rename, keepalives and a stall watch), and the run's metrics
// (a Pushgateway, or a textfile for node exporter). The provider clients'
// retries and rate limits are internal/httpcall's and each client's own.
package load

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gocarina/gocsv"

	"github.com/settlekit/settle/pipeline"
)

// Reports writes the reconciliation CSVs of a date under Dir/DATE/. A text
// cell a spreadsheet would take for a formula is written as text
// (formulaSafe), and a row with a cell that a spreadsheet splitting at ';'
// or at tabs would make a formula of is written quoted
// (formulaAfterSeparator): the reports carry the platform's and the
// providers' words.
type Reports struct {
	Dir string // default "reports"
}

// DateDir is the directory of a date's reports.
func (r Reports) DateDir(d pipeline.Date) string {
	dir := r.Dir
	if dir == "" {
		dir = "reports"
	}
	return filepath.Join(dir, d.String())
}

// WriteOrders writes orders.csv from the lines lines emits, streaming, in
// the order given (the caller sorts: same input, same bytes). The file is
// written under a temporary name and renamed into place, so a reader never
// sees half a report; a reader knows a whole set of a date's reports by
// its manifest (BeginSet, WriteManifest).
func (r Reports) WriteOrders(ctx context.Context, d pipeline.Date, lines func(func(pipeline.OrderLine) error) error) (Written, error) {
	return writeCSV(r.DateDir(d), "orders.csv", lines, true)
}

// WritePayouts writes payouts.csv.
func (r Reports) WritePayouts(d pipeline.Date, lines func(func(pipeline.PayoutLine) error) error) (Written, error) {
	return writeCSV(r.DateDir(d), "payouts.csv", lines, true)
}

// WriteSellers writes sellers.csv.
func (r Reports) WriteSellers(d pipeline.Date, lines func(func(pipeline.SellerLine) error) error) (Written, error) {
	return writeCSV(r.DateDir(d), "sellers.csv", lines, true)
}

// WriteSummary writes summary.csv.
func (r Reports) WriteSummary(d pipeline.Date, lines func(func(pipeline.SummaryLine) error) error) (Written, error) {
	return writeCSV(r.DateDir(d), "summary.csv", lines, true)
}

// WriteMismatches writes mismatches.csv.
func (r Reports) WriteMismatches(d pipeline.Date, lines func(func(pipeline.Mismatch) error) error) (Written, error) {
	return writeCSV(r.DateDir(d), "mismatches.csv", lines, true)
}

// ManifestName is the file that says a date's set of reports is whole.
const ManifestName = "manifest.csv"

// reportNames are the files of a date's set of reports, as Reports'
// writers name them: the files Prune removes, the manifest first.
var reportNames = []string{ManifestName, "orders.csv", "payouts.csv", "sellers.csv", "summary.csv", "mismatches.csv"}

// isReportFile reports whether name is a file of a set of reports, or
// the temporary file of one a crash left: writeCSV's ".NAME.*", whose *
// os.CreateTemp makes digits alone (an operator's ".orders.csv.bak" is
// not settle's).
func isReportFile(name string) bool {
	for _, r := range reportNames {
		if name == r {
			return true
		}
		if rest, ok := strings.CutPrefix(name, "."+r+"."); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}

// Prune removes the reports of every date under the reports directory
// whose report files were all last written before cutoff, but for the
// dates keep names (a run's own): settle's own files alone (the set's,
// and the temporary files a crash left of them; the manifest first, so
// that a reader takes what is left as not whole), then the date's
// directory when nothing else is in it (a file of the operator's keeps
// it). A date's directory with nothing in it, last changed before cutoff,
// is removed too: settle run's start-up check makes its date's directory,
// and a run that stopped before its reports left it empty. A directory
// whose name is not a date (YYYY-MM-DD) is not looked
// into, nor is a symbolic link, a date's or a file's: nothing outside the
// reports directory, nor of another date, is removed, also when a date's
// directory is replaced by a link while it is pruned (every file is
// removed through the directory that was checked, os.Root). Each date is
// removed holding lock(d), the date's report lock (its writers' - a
// person's settle report of an old date - wait, or are waited for), and
// looked at again under it. One date that cannot be removed does not stop
// the others: their errors are joined; a lock that cannot be taken (the
// ledger's database gone) ends the pruning, the dates left to the next
// run. It returns the dates removed, in order.
func (r Reports) Prune(cutoff time.Time, keep func(pipeline.Date) bool, lock func(pipeline.Date) (release func(), err error)) ([]pipeline.Date, error) {
	dir := r.Dir
	if dir == "" {
		dir = "reports"
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prune reports: %w", err)
	}
	defer root.Close()
	entries, err := readDir(root)
	if err != nil {
		return nil, fmt.Errorf("prune reports in %s: %w", dir, err)
	}
	var pruned []pipeline.Date
	var errs []error
	for _, e := range entries {
		d, err := pipeline.ParseDate(e.Name())
		if !e.IsDir() || err != nil || d.String() != e.Name() || keep(d) {
			continue
		}
		if old, err := dateWrittenBefore(root, e.Name(), cutoff); err != nil || !old {
			if err != nil {
				errs = append(errs, fmt.Errorf("prune the reports of %s: %w", d, err))
			}
			continue
		}
		release, err := lock(d)
		if err != nil {
			// The ledger's, the same for every date: the others are left
			// to the next run.
			errs = append(errs, fmt.Errorf("prune the reports of %s: %w", d, err))
			break
		}
		removed, err := pruneDate(root, e.Name(), cutoff)
		release()
		if err != nil {
			errs = append(errs, fmt.Errorf("prune the reports of %s: %w", d, err))
		}
		if removed {
			pruned = append(pruned, d)
		}
	}
	return pruned, errors.Join(errs...)
}

// readDir is os.ReadDir of a root's directory: its entries sorted by name.
func readDir(root *os.Root) ([]fs.DirEntry, error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// openDate opens the directory name of root, a date's, when it is one
// (not a symbolic link, nor replaced by one as it is opened); ok false,
// with a nil error, when it is not there or not a directory.
func openDate(root *os.Root, name string) (dr *os.Root, fi fs.FileInfo, ok bool, err error) {
	fi, err = root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	if !fi.IsDir() {
		return nil, nil, false, nil
	}
	dr, err = root.OpenRoot(name)
	if err != nil {
		return nil, nil, false, err
	}
	opened, err := dr.Stat(".")
	if err != nil || !os.SameFile(fi, opened) {
		dr.Close()
		return nil, nil, false, err
	}
	return dr, fi, true, nil
}

// dateWrittenBefore is writtenBefore of root's date directory name.
func dateWrittenBefore(root *os.Root, name string, cutoff time.Time) (bool, error) {
	dr, _, ok, err := openDate(root, name)
	if err != nil || !ok {
		return false, err
	}
	defer dr.Close()
	return writtenBefore(dr, cutoff)
}

// pruneDate removes the report files of root's date directory name, its
// report lock held, when they are still all written before cutoff.
func pruneDate(root *os.Root, name string, cutoff time.Time) (bool, error) {
	dr, fi, ok, err := openDate(root, name)
	if err != nil || !ok {
		return false, err
	}
	defer dr.Close()
	if old, err := writtenBefore(dr, cutoff); err != nil || !old {
		return false, err
	}
	entries, err := readDir(dr)
	if err != nil {
		return false, err
	}
	// The manifest first: a reader takes the set as whole while it is there.
	if m, err := dr.Lstat(ManifestName); err == nil && m.Mode().IsRegular() {
		if err := dr.Remove(ManifestName); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	for _, e := range entries {
		if e.Name() != ManifestName && e.Type().IsRegular() && isReportFile(e.Name()) {
			if err := dr.Remove(e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return true, err
			}
		}
	}
	// Left in place with anything else in it, or when it is no longer the
	// directory emptied.
	if now, err := root.Lstat(name); err != nil || !os.SameFile(fi, now) {
		return true, nil
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return true, err
	}
	return true, nil
}

// writtenBefore reports whether the date directory dr holds report files
// (isReportFile, regular files) and every one of them was last written
// before cutoff, or holds nothing at all and was last changed before
// cutoff (made by a run that stopped before its reports).
func writtenBefore(dr *os.Root, cutoff time.Time) (bool, error) {
	entries, err := readDir(dr)
	if err != nil {
		return false, err
	}
	if len(entries) == 0 {
		fi, err := dr.Stat(".")
		if err != nil {
			return false, err
		}
		return fi.ModTime().Before(cutoff), nil
	}
	found := false
	for _, e := range entries {
		if !e.Type().IsRegular() || !isReportFile(e.Name()) {
			continue
		}
		fi, err := dr.Lstat(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		if !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
			return false, nil
		}
		found = true
	}
	return found, nil
}

// ManifestLine is one row of a date's manifest: one report of the set, as
// written.
type ManifestLine struct {
	File   string `csv:"file"`
	Rows   int    `csv:"rows"` // data rows, header excluded
	Bytes  int64  `csv:"bytes"`
	SHA256 string `csv:"sha256"` // hex
}

// BeginSet removes the date's manifest before its reports are written
// again: the reports are renamed into place one by one, and a writer that
// stops between two (a crash, a lost database) leaves a set that mixes
// two writings. Without a manifest a reader knows the set is not whole.
func (r Reports) BeginSet(d pipeline.Date) error {
	err := os.Remove(filepath.Join(r.DateDir(d), ManifestName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: %w", ManifestName, err)
	}
	return nil
}

// WriteManifest writes the date's manifest.csv last, once every report of
// the set is in place (files, as written): each file's name, rows, bytes
// and sha256, in the order given. Same reports, same bytes; a set written
// again with other contents has another manifest.
func (r Reports) WriteManifest(d pipeline.Date, files ...Written) (Written, error) {
	dir := r.DateDir(d)
	// The reports' renames on disk before the manifest that vouches for them.
	if err := syncDir(dir); err != nil {
		return Written{}, fmt.Errorf("write %s: %w", ManifestName, err)
	}
	w, err := writeCSV(dir, ManifestName, func(fn func(ManifestLine) error) error {
		for _, f := range files {
			if err := fn(ManifestLine{File: filepath.Base(f.Path), Rows: f.Rows, Bytes: f.Bytes, SHA256: f.SHA256}); err != nil {
				return err
			}
		}
		return nil
	}, true)
	if err == nil {
		err = syncDir(dir)
	}
	return w, err
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Written describes a file written by this package.
type Written struct {
	Path   string
	SHA256 string // hex
	Bytes  int64
	Rows   int // data rows, header excluded
}

// chunk is how many rows are marshalled at a time: memory stays flat.
const chunk = 4096

// formulaSafe is a report's cell as a spreadsheet is to show it. Text
// beginning with '=', '+', '-', '@', a tab or a carriage return is a
// formula to Excel and LibreOffice (CSV injection: a seller id, an order
// number or a provider's refusal such as =HYPERLINK(...) run when finance
// opens the file); such a cell gets a leading single quote, which the
// spreadsheet shows as text (OWASP's advice). A number, a negative one
// (a clawback's -9.00) too, is left as it is. So does a cell whose own
// leading single quotes are followed by such a character ("'=2+2", an
// order number of the platform's): written as it is, it read back as the
// cell "=2+2" made safe, to a loader dropping the quote and to the
// spreadsheet hiding it. A loader gets the text back by dropping one
// leading quote from a cell whose leading quotes are followed by one of
// those characters, and from no other.
func formulaSafe(cell string) string {
	rest := strings.TrimLeft(cell, "'")
	if rest == "" || !strings.ContainsRune("=+-@\t\r", rune(rest[0])) || isNumber(cell) {
		return cell
	}
	return "'" + cell
}

// isNumber reports whether s is an integer or a decimal, signed or not:
// the reports' amounts.
func isNumber(s string) bool {
	s = strings.TrimPrefix(s, "-")
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(x string) bool {
		return x != "" && strings.Trim(x, "0123456789") == ""
	}
	return digits(whole) && (!dot || digits(frac))
}

// formulaAfterSeparator reports whether a part of cell after a ';' or a tab
// would be a formula: a spreadsheet whose list separator is ';' (Excel in
// most of continental Europe) splits an unquoted cell there, so
// "S1;=cmd|..." is two cells to it, the second a formula (OWASP: the
// separator, not only the first character); one that splits at tabs too
// (LibreOffice's text import, whose separators are ',', ';' and tab unless
// told otherwise; Excel's Text Import Wizard, tab its default) does so at a
// tab, also in a cell beginning with one that formulaSafe made text ("'",
// then a tab and the formula). Leading spaces of the part are not trusted
// to keep it text, nor is a number: the cell there runs on past the ','s to
// the next separator ("-5,,," is no number).
func formulaAfterSeparator(cell string) bool {
	for i := strings.IndexAny(cell, ";\t"); i >= 0; i = strings.IndexAny(cell, ";\t") {
		cell = cell[i+1:]
		part := strings.TrimLeft(cell, " ")
		if part != "" && strings.ContainsRune("=+-@\t\r", rune(part[0])) {
			return true
		}
	}
	return false
}

// safeCells writes every cell through formulaSafe. A row one of whose cells
// holds a formula after a ';' or a tab (formulaAfterSeparator) is written
// with every cell quoted, which a spreadsheet never splits; any other row
// is encoding/csv's, byte for byte.
type safeCells struct {
	*csv.Writer
	raw io.Writer // what the csv.Writer writes to
}

func (w safeCells) Write(row []string) error {
	quote := false
	for i, c := range row {
		row[i] = formulaSafe(c)
		quote = quote || formulaAfterSeparator(row[i])
	}
	if !quote {
		return w.Writer.Write(row)
	}
	w.Writer.Flush()
	if err := w.Writer.Error(); err != nil {
		return err
	}
	var b strings.Builder
	for i, c := range row {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(c, `"`, `""`))
		b.WriteByte('"')
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w.raw, b.String())
	return err
}

// The modes of the reports and of the directories of their dates: the
// reports hold what each seller is paid, for the process that writes them
// and its group alone - in the deploy, the pod's fsGroup, which the
// loaders that read them (another pod, another user) share -, never for
// every user of the machine or of the volume's server. The files' mode is
// set as it is, whatever the umask (where the volume keeps modes); a
// directory's is umask's to narrow.
const (
	ReportFileMode fs.FileMode = 0o640
	ReportDirMode  fs.FileMode = 0o750
)

// writeCSV streams the rows produce emits into dir/name with gocsv, in
// chunks: the header with the first chunk (alone for no rows), the rest
// without, under a temporary name, synced, then renamed into place with
// mode ReportFileMode. A report (safe) has its cells written through
// formulaSafe; otherwise they are written as they are.
func writeCSV[T any](dir, name string, produce func(func(T) error) error, safe bool) (w Written, err error) {
	if err := os.MkdirAll(dir, ReportDirMode); err != nil {
		return w, fmt.Errorf("write %s: %w", name, err)
	}
	w.Path = filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return w, fmt.Errorf("write %s: %w", name, err)
	}
	// CreateTemp's 0600 let no loader read a report but settle's own user.
	// A volume that keeps no modes (SMB, some FUSE mounts) may refuse:
	// the report is written all the same, with os.CreateTemp's 0600 or
	// the mode the mount gives every file, rather than not at all.
	_ = f.Chmod(ReportFileMode)
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	count := &counter{}
	bw := bufio.NewWriterSize(io.MultiWriter(f, h, count), 1<<16)
	buf := make([]T, 0, chunk)
	header := true
	flush := func() error {
		if !header && len(buf) == 0 {
			return nil
		}
		var err error
		switch {
		case safe && header:
			err = gocsv.MarshalCSV(buf, safeCells{csv.NewWriter(bw), bw})
		case safe:
			err = gocsv.MarshalCSVWithoutHeaders(buf, safeCells{csv.NewWriter(bw), bw})
		case header:
			err = gocsv.Marshal(buf, bw)
		default:
			err = gocsv.MarshalWithoutHeaders(buf, bw)
		}
		header, buf = false, buf[:0]
		return err
	}
	err = produce(func(row T) error {
		w.Rows++
		buf = append(buf, row)
		if len(buf) == chunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		// On disk before it takes the report's name: after a crash of the
		// node the name holds the old report or the whole new one.
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), w.Path)
	}
	if err != nil {
		return Written{}, fmt.Errorf("write %s: %w", name, err)
	}
	w.SHA256, w.Bytes = hex.EncodeToString(h.Sum(nil)), count.n
	return w, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
