package infiniapay

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/settlekit/settle/pipeline"
)

// Layout says how a trade-details file is written and how an error file
// is read: data, not code, so that onboarding can match Infinia's
// published templates ("Trade_details.csv", "Trade_details_error_file")
// without a release. Infinia's documentation lists the templates but their
// content could not be retrieved, so DefaultLayout is ours (README).
// LoadLayout reads one from a JSON file.
type Layout struct {
	// Columns of the trade file, in order. Each takes a field of a
	// pipeline.TradeRow (Fields) or a constant Value.
	Columns []Column `json:"columns"`
	// TradeTypes maps our trade types (SALE, REFUND) to Infinia's words;
	// a type not listed is written as it is.
	TradeTypes map[string]string `json:"tradeTypes,omitempty"`
	// TimeFormat is the Go time layout of trade_time; default
	// time.RFC3339.
	TimeFormat string `json:"timeFormat,omitempty"`
	// TimeZone is the IANA zone trade_time is written in (a format with
	// no offset, such as "2006-01-02 15:04:05", says nothing of it);
	// default UTC.
	TimeZone string         `json:"timeZone,omitempty"`
	loc      *time.Location // TimeZone's, set by WithDefaults; nil: UTC
	// ErrorFile names the columns of Infinia's error file.
	ErrorFile ErrorLayout `json:"errorFile"`
}

// Column is one column of a trade file.
type Column struct {
	Header string `json:"header"`          // the header row's name for it
	Field  string `json:"field,omitempty"` // one of Fields
	Value  string `json:"value,omitempty"` // a constant, when Field is empty
}

// ErrorLayout names the columns of an error file by their headers; they
// may come in any order, among others. OrderNo and Reason are required,
// Line and Currency optional.
type ErrorLayout struct {
	Line     string `json:"line,omitempty"`     // the refused line of our trade file (0: the whole file)
	OrderNo  string `json:"orderNo"`            // the refused row's order number
	Reason   string `json:"reason"`             // why
	Currency string `json:"currency,omitempty"` // the row's currency, as Infinia writes it
}

// Fields are the trade-row fields a Column may take (pipeline.TradeRow).
var Fields = []string{"order_no", "trade_type", "product_type", "currency", "amount", "commission", "seller_amount", "trade_time"}

// ErrLayout: a file that is not in the configured layout.
var ErrLayout = errors.New("not the configured layout")

// DefaultLayout is our own layout: the header
// order_no,trade_type,product_type,currency,amount,commission,seller_amount,trade_time
// and the error file line,order_no,reason.
func DefaultLayout() Layout {
	l := Layout{TimeFormat: time.RFC3339, ErrorFile: ErrorLayout{Line: "line", OrderNo: "order_no", Reason: "reason"}}
	for _, f := range Fields {
		l.Columns = append(l.Columns, Column{Header: f, Field: f})
	}
	return l
}

// LoadLayout reads a layout from a JSON file (see Layout; unknown keys are
// refused) and checks it. Errors name the file.
func LoadLayout(path string) (Layout, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Layout{}, fmt.Errorf("layout: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var l Layout
	if err := dec.Decode(&l); err != nil {
		return Layout{}, fmt.Errorf("layout %s: %w", path, err)
	}
	if len(l.Columns) == 0 {
		return Layout{}, fmt.Errorf("layout %s: no columns", path)
	}
	if l, err = l.WithDefaults(); err != nil {
		return Layout{}, fmt.Errorf("layout %s: %w", path, err)
	}
	return l, nil
}

// WithDefaults returns l checked, with the defaults of DefaultLayout for
// what it leaves empty (the zero Layout is DefaultLayout).
func (l Layout) WithDefaults() (Layout, error) {
	if len(l.Columns) == 0 && len(l.TradeTypes) == 0 && l.TimeFormat == "" && l.TimeZone == "" && l.ErrorFile == (ErrorLayout{}) {
		return DefaultLayout(), nil
	}
	d := DefaultLayout()
	if len(l.Columns) == 0 {
		l.Columns = d.Columns
	}
	if l.TimeFormat == "" {
		l.TimeFormat = d.TimeFormat
	}
	if l.ErrorFile == (ErrorLayout{}) {
		l.ErrorFile = d.ErrorFile
	}
	if l.TimeZone != "" {
		// Named, never Local: the file must not depend on the machine.
		loc, err := time.LoadLocation(l.TimeZone)
		if err != nil || l.TimeZone == "Local" {
			return l, fmt.Errorf("timeZone %q: want an IANA zone name, such as Asia/Shanghai", l.TimeZone)
		}
		l.loc = loc
	}
	headers := map[string]bool{}
	hasOrder := false
	for i, c := range l.Columns {
		switch {
		case strings.TrimSpace(c.Header) == "":
			return l, fmt.Errorf("column %d: no header", i+1)
		case headers[c.Header]:
			return l, fmt.Errorf("column %d: header %q twice", i+1, c.Header)
		case c.Field != "" && c.Value != "":
			return l, fmt.Errorf("column %q: a field or a value, not both", c.Header)
		case c.Field != "" && !slices.Contains(Fields, c.Field):
			return l, fmt.Errorf("column %q: unknown field %q (want one of %s)", c.Header, c.Field, strings.Join(Fields, ", "))
		}
		headers[c.Header] = true
		hasOrder = hasOrder || c.Field == "order_no"
	}
	if !hasOrder {
		return l, errors.New("no column takes order_no: Infinia's error file could not name the refused orders")
	}
	if l.ErrorFile.OrderNo == "" || l.ErrorFile.Reason == "" {
		return l, errors.New("errorFile: orderNo and reason are required")
	}
	return l, nil
}

// Header is the trade file's header row.
func (l Layout) Header() []string {
	out := make([]string, len(l.Columns))
	for i, c := range l.Columns {
		out[i] = c.Header
	}
	return out
}

// record turns a row into the layout's fields, with Infinia's currency
// code and trade-type words.
func (l Layout) record(r pipeline.TradeRow, cur Currencies) ([]string, error) {
	out := make([]string, len(l.Columns))
	for i, c := range l.Columns {
		switch c.Field {
		case "":
			out[i] = c.Value
		case "order_no":
			out[i] = r.OrderNo
		case "trade_type":
			out[i] = r.TradeType
			if w, ok := l.TradeTypes[r.TradeType]; ok {
				out[i] = w
			}
		case "product_type":
			out[i] = r.ProductType
		case "currency":
			out[i] = cur.Out(pipeline.Currency(r.Currency))
		case "amount":
			out[i] = r.Amount
		case "commission":
			out[i] = r.Commission
		case "seller_amount":
			out[i] = r.SellerAmount
		case "trade_time":
			t, err := time.Parse(time.RFC3339, r.TradeTime)
			if err != nil {
				return nil, fmt.Errorf("order %s: trade_time %q: %w", r.OrderNo, r.TradeTime, err)
			}
			if l.loc != nil {
				t = t.In(l.loc)
			} else {
				t = t.UTC()
			}
			out[i] = t.Format(l.TimeFormat)
		}
	}
	return out, nil
}

// WriteTradeFile writes the trade file dir/name from rows in the client's
// layout and currency codes, atomically (a temporary file renamed into
// place), and returns its path, sha256 (hex), size and data rows. Same
// rows, same bytes. It fits StageConfig.WriteFile.
func (c *Client) WriteTradeFile(dir, name string, rows func(func(pipeline.TradeRow) error) error) (path, sum string, size int64, n int, err error) {
	return c.cfg.Layout.write(dir, name, c.cfg.Currencies, rows)
}

// WorkDirMode is the mode the work directory and its dates' directories,
// where the trade files are built, are made with: settle's user's alone,
// as the files are (os.CreateTemp's 0600). A file's name is its seller's
// Infinia id, currency and date; readable by all (0755), a directory
// listed the day's sellers to every user of the machine. A directory
// already there keeps its mode (os.MkdirAll).
const WorkDirMode fs.FileMode = 0o700

func (l Layout) write(dir, name string, cur Currencies, rows func(func(pipeline.TradeRow) error) error) (path, sum string, size int64, n int, err error) {
	if err := os.MkdirAll(dir, WorkDirMode); err != nil {
		return "", "", 0, 0, fmt.Errorf("write %s: %w", name, err)
	}
	path = filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return "", "", 0, 0, fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	count := &counter{}
	bw := bufio.NewWriterSize(io.MultiWriter(f, h, count), 1<<16)
	w := csv.NewWriter(bw)
	if err = w.Write(l.Header()); err != nil {
		return "", "", 0, 0, fmt.Errorf("write %s: %w", name, err)
	}
	err = rows(func(r pipeline.TradeRow) error {
		rec, err := l.record(r, cur)
		if err != nil {
			return err
		}
		n++
		return w.Write(rec)
	})
	if err == nil {
		w.Flush()
		err = w.Error()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return "", "", 0, 0, fmt.Errorf("write %s: %w", name, err)
	}
	return path, hex.EncodeToString(h.Sum(nil)), count.n, n, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// ParseErrorFile reads an error file: CSV with a header row (a UTF-8 byte
// order mark is tolerated) holding at least the columns ErrorFile names,
// in any order, then one row per refused line. A header without them is an
// error wrapping ErrLayout that shows the header found, never a guess. A
// currency column is read back to the platform's code with cur. Errors
// carry the line, like csv.ParseError.
func (l Layout) ParseErrorFile(r io.Reader, cur Currencies) ([]ErrorRow, error) {
	if l.ErrorFile == (ErrorLayout{}) {
		l.ErrorFile = DefaultLayout().ErrorFile
	}
	e := l.ErrorFile
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("error file: empty: %w (want a header with %s)", ErrLayout, e.want())
	}
	if err != nil {
		return nil, fmt.Errorf("error file: %w", err)
	}
	head[0] = strings.TrimPrefix(head[0], "\uFEFF")
	col := func(name string) int {
		if name == "" {
			return -1
		}
		return slices.Index(head, name)
	}
	line, order, reason, curCol := col(e.Line), col(e.OrderNo), col(e.Reason), col(e.Currency)
	if order < 0 || reason < 0 || (e.Line != "" && line < 0) || (e.Currency != "" && curCol < 0) {
		return nil, fmt.Errorf("error file: header %q: %w (want the columns %s; set them with --infinia-layout)",
			clip(strings.Join(head, ",")), ErrLayout, e.want())
	}
	cr.FieldsPerRecord = len(head)
	var rows []ErrorRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("error file: %w", err)
		}
		at, _ := cr.FieldPos(0)
		for _, f := range rec {
			// Another encoding (GBK, as Chinese exports often are) or a
			// NUL: text the ledger cannot store, which stopped the stage
			// on every run (found by a review). The file is held with the
			// reason, as one in another layout.
			if !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
				return nil, fmt.Errorf("error file line %d: not UTF-8 text: %w (another encoding?)", at, ErrLayout)
			}
		}
		row := ErrorRow{OrderNo: rec[order], Reason: rec[reason]}
		if line >= 0 {
			n, err := strconv.Atoi(rec[line])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("error file line %d: %s %q is not a line number", at, e.Line, clip(rec[line]))
			}
			row.Line = n
		}
		if curCol >= 0 && rec[curCol] != "" {
			c, err := cur.In(rec[curCol])
			if err != nil {
				return nil, fmt.Errorf("error file line %d: %s: %w", at, e.Currency, err)
			}
			row.Currency = c
		}
		rows = append(rows, row)
	}
}

func (e ErrorLayout) want() string {
	var w []string
	for _, s := range []string{e.Line, e.OrderNo, e.Reason, e.Currency} {
		if s != "" {
			w = append(w, strconv.Quote(s))
		}
	}
	return strings.Join(w, ", ")
}
