package wechatpay

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// BillLayout names the columns of a distribution bill by their header
// text, and the values that are WeChat Pay's words. Columns are found by
// name (any order, case and surrounding spaces ignored, extra columns
// skipped), so that a layout WeChat Pay extends or reorders is still read,
// and one that lacks a column we need is an error naming it.
//
// WeChat Pay publishes the bill's header as "create_time, initiator,
// sponsor, sub_mchid, transaction_id, order_id, out_order_no, detail_id,
// receiver_account, amount, currency, settlement_amount,
// settlement_currency, exchange_rate, business_type, status, description"
// (API Download Address for Bill, chapter3_9 of 2022; chapter4_1_9 spells
// detail_id "detaill_id"): those names are DefaultBillLayout's. It has no
// receiver type column: ReceiverType is read when a bill has one, and
// without it a line is the platform's by its account alone. The
// business_type values, the time format and the summary lines could not be
// read in the published page; ours are assumed (see the README) and are
// data, to be matched at onboarding.
type BillLayout struct {
	Time, Initiator, Sponsor                     string
	TransactionID, OutOrderNo, OrderID, DetailID string
	ReceiverType, Account, Amount, Currency      string
	ExchangeRate, BusinessType, Status           string
	Description                                  string
	// Distribution and Unfreeze are the business_type values of a payment
	// to a receiver and of the rest released to the seller.
	Distribution, Unfreeze string
	// Summary is the first cell of the summary header row; the row after
	// it holds the count of lines and their total in yuan.
	Summary string
}

// DefaultBillLayout is the published header, with our assumptions where
// the published page is silent (see BillLayout).
var DefaultBillLayout = BillLayout{
	Time: "create_time", Initiator: "initiator", Sponsor: "sponsor",
	TransactionID: "transaction_id", OutOrderNo: "out_order_no", OrderID: "order_id", DetailID: "detail_id",
	ReceiverType: "receiver_type", Account: "receiver_account", Amount: "amount", Currency: "currency",
	ExchangeRate: "exchange_rate", BusinessType: "business_type", Status: "status", Description: "description",
	Distribution: BillDistribution, Unfreeze: BillUnfreeze, Summary: "total_count",
}

// LoadBillLayout reads a bill layout from a JSON file whose keys are
// BillLayout's field names (Time, Amount, Summary, ...); a field left out
// keeps DefaultBillLayout's, and an unknown key is an error. For a bill
// whose headers (Chinese ones, say) or business types are not the
// assumed ones: a file at onboarding, not a release.
func LoadBillLayout(path string) (BillLayout, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return BillLayout{}, fmt.Errorf("bill layout: %w", err)
	}
	l := DefaultBillLayout
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return BillLayout{}, fmt.Errorf("bill layout %s: %w", path, err)
	}
	for name, v := range map[string]string{"Time": l.Time, "TransactionID": l.TransactionID, "OutOrderNo": l.OutOrderNo,
		"Account": l.Account, "Amount": l.Amount, "BusinessType": l.BusinessType,
		"Distribution": l.Distribution, "Unfreeze": l.Unfreeze, "Summary": l.Summary} {
		if strings.TrimSpace(v) == "" {
			return BillLayout{}, fmt.Errorf("bill layout %s: %s is empty", path, name)
		}
	}
	return l, nil
}

// BillTimeLayout is the bill's time format (Beijing time); RFC 3339 is
// read too.
const BillTimeLayout = "2006-01-02 15:04:05"

// Bill line types: a distribution to a receiver, or the rest unfrozen for
// the seller (assumed business_type values).
const (
	BillDistribution = "DISTRIBUTION"
	BillUnfreeze     = "UNFREEZE"
)

// Beijing is the time zone of WeChat Pay's dates and bill times (UTC+8, no
// daylight saving).
var Beijing = time.FixedZone("CST", 8*3600)

// BillLine is one row of a distribution bill. Amounts in the file are in
// yuan (WeChat Pay: "the unit of amount in the bill is Yuan (CNY)").
type BillLine struct {
	Time          time.Time
	Initiator     string // the merchant that requested the distribution
	Sponsor       string // the merchant whose funds were distributed (the sub-merchant)
	TransactionID string
	OutOrderNo    string
	OrderID       string
	DetailID      string
	Type          string // BillDistribution or BillUnfreeze (from business_type)
	ReceiverType  string // "" when the bill has no such column (the published header has none)
	Account       string
	Currency      pipeline.Currency // CNY when the bill has no currency column
	Amount        int64             // minor units
	ExchangeRate  string            // as written
	Status        string
	Description   string
}

// BillError is a bill that does not parse, with the line that did not.
type BillError struct {
	Line int // 1-based
	Err  error
}

// Error says which line of the bill is wrong.
func (e *BillError) Error() string { return fmt.Sprintf("bill line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause.
func (e *BillError) Unwrap() error { return e.Err }

// cell normalizes a bill cell: spreadsheets' "`" prefix, a BOM, spaces.
func cell(s string) string {
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(s, "\ufeff")), "`"))
}

// columns maps the layout's fields to their index in header; a required
// field missing is an error naming it.
func (l BillLayout) columns(header []string) (map[string]int, error) {
	at := map[string]int{}
	for i, h := range header {
		at[strings.ToLower(cell(h))] = i
	}
	idx := map[string]int{}
	required := []string{l.Time, l.TransactionID, l.OutOrderNo, l.Account, l.Amount, l.BusinessType}
	optional := []string{l.Initiator, l.Sponsor, l.OrderID, l.DetailID, l.ReceiverType, l.Currency, l.ExchangeRate, l.Status, l.Description}
	for i, name := range append(required, optional...) {
		if name == "" {
			continue // an optional column the layout does not name
		}
		j, ok := at[strings.ToLower(name)]
		switch {
		case ok:
			idx[name] = j
		case i < len(required):
			return nil, fmt.Errorf("the header has no column %q (header: %s)", name, clip(strings.Join(header, ",")))
		}
	}
	return idx, nil
}

// Parse reads a bill in layout l: a header row, one row per successful
// receiver line, then the summary (a row starting with l.Summary and a row
// with the count of lines and their total in yuan), which must agree with
// the rows: the bill is not signed, so this is its check.
func (l BillLayout) Parse(data []byte) ([]BillLine, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, &BillError{Line: 1, Err: errors.New("no header row")}
	}
	idx, err := l.columns(header)
	if err != nil {
		return nil, &BillError{Line: 1, Err: err}
	}
	var lines []BillLine
	var total int64
	for {
		rec, err := r.Read()
		line := csvLine(r, rec, err)
		if err == io.EOF {
			return nil, &BillError{Line: line, Err: errors.New("no summary lines: the bill may be cut short")}
		}
		if err != nil {
			return nil, &BillError{Line: line, Err: err}
		}
		if len(rec) > 0 && strings.EqualFold(cell(rec[0]), l.Summary) {
			return lines, checkSummary(r, len(lines), total)
		}
		if len(rec) != len(header) {
			return nil, &BillError{Line: line, Err: fmt.Errorf("%d fields, the header has %d", len(rec), len(header))}
		}
		bl, err := l.line(rec, idx)
		if err == nil {
			var milli int64
			if milli, err = checksumAmount(cell(rec[idx[l.Amount]])); err == nil {
				total, err = pipeline.Add(total, milli)
			}
		}
		if err != nil {
			return nil, &BillError{Line: line, Err: err}
		}
		lines = append(lines, bl)
	}
}

func (l BillLayout) line(rec []string, idx map[string]int) (BillLine, error) {
	get := func(name string) string {
		i, ok := idx[name]
		if !ok || i >= len(rec) {
			return ""
		}
		return cell(rec[i])
	}
	at, err := parseBillTime(get(l.Time))
	if err != nil {
		return BillLine{}, err
	}
	cur := pipeline.Currency("CNY")
	if c := get(l.Currency); c != "" {
		if cur, err = pipeline.ParseCurrency(c); err != nil {
			return BillLine{}, err
		}
	}
	amount, err := pipeline.ParseMinor(get(l.Amount), cur)
	if err != nil {
		return BillLine{}, fmt.Errorf("%s: %w", l.Amount, err)
	}
	var typ string
	switch get(l.BusinessType) {
	case l.Distribution:
		typ = BillDistribution
	case l.Unfreeze:
		typ = BillUnfreeze
	default:
		return BillLine{}, fmt.Errorf("%s %q: want %q or %q", l.BusinessType, clip(get(l.BusinessType)), l.Distribution, l.Unfreeze)
	}
	return BillLine{Time: at, Initiator: get(l.Initiator), Sponsor: get(l.Sponsor), TransactionID: get(l.TransactionID),
		OutOrderNo: get(l.OutOrderNo), OrderID: get(l.OrderID), DetailID: get(l.DetailID), Type: typ,
		ReceiverType: get(l.ReceiverType), Account: get(l.Account), Currency: cur, Amount: amount,
		ExchangeRate: get(l.ExchangeRate), Status: get(l.Status), Description: get(l.Description)}, nil
}

func parseBillTime(s string) (time.Time, error) {
	if t, err := time.ParseInLocation(BillTimeLayout, s, Beijing); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("time %q: want %s (Beijing) or RFC 3339", clip(s), BillTimeLayout)
}

// checksumUnit is the scale of the bill's total check: thousandths, so that
// the amount column adds up as the decimal numbers it holds, whatever the
// lines' currencies (a JPY "100" and a USD "1.00" are 101.00, not 2.00 as
// their minor units added up: found by a review). The total is the file's
// check, not a sum of money.
const checksumUnit pipeline.Currency = "KWD" // three decimals

// checksumAmount is a bill amount in thousandths (checksumUnit).
func checksumAmount(s string) (int64, error) { return pipeline.ParseMinor(s, checksumUnit) }

// csvLine is the line of the record a Read returned (rec, err): a parse
// error's own, else the record's first field's. FieldPos panics when the
// last Read recorded no field (a bare quote in a record's first field: a
// malformed bill crashed the process; found by a review).
func csvLine(r *csv.Reader, rec []string, err error) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.StartLine
	}
	if err != nil || len(rec) == 0 {
		return 0
	}
	line, _ := r.FieldPos(0)
	return line
}

// checkSummary reads the summary values: the count of rows and their total
// in yuan (the bill's unit).
func checkSummary(r *csv.Reader, count int, total int64) error {
	rec, err := r.Read()
	line := csvLine(r, rec, err)
	if err != nil || len(rec) < 2 {
		return &BillError{Line: line, Err: errors.New("want the summary values: count and total amount")}
	}
	n, err := strconv.Atoi(cell(rec[0]))
	if err != nil || n != count {
		return &BillError{Line: line, Err: fmt.Errorf("summary count %q, the bill has %d rows", clip(rec[0]), count)}
	}
	sum, err := checksumAmount(cell(rec[1]))
	if err != nil || sum != total {
		return &BillError{Line: line, Err: fmt.Errorf("summary total %q, the rows' amounts add up to %s", clip(rec[1]), pipeline.FormatMinor(total, checksumUnit))}
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil || strings.TrimSpace(strings.Join(rec, "")) != "" {
			return &BillError{Line: csvLine(r, rec, err), Err: errors.New("data after the summary")}
		}
	}
}

// Format writes lines as a bill in layout l, in the column order of the
// published header, every value prefixed by "`" as WeChat Pay's bills do.
func (l BillLayout) Format(lines []BillLine) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{l.Time, l.Initiator, l.Sponsor, l.TransactionID, l.OrderID, l.OutOrderNo, l.DetailID, l.ReceiverType,
		l.Account, l.Amount, l.Currency, l.ExchangeRate, l.BusinessType, l.Status, l.Description})
	var total int64 // thousandths (checksumUnit), as Parse adds the column up
	for _, b := range lines {
		milli, err := checksumAmount(pipeline.FormatMinor(b.Amount, b.Currency))
		if err == nil {
			total, err = pipeline.Add(total, milli)
		}
		if err != nil {
			return nil, err
		}
		typ := l.Distribution
		if b.Type == BillUnfreeze {
			typ = l.Unfreeze
		}
		rec := []string{b.Time.In(Beijing).Format(BillTimeLayout), b.Initiator, b.Sponsor, b.TransactionID, b.OrderID,
			b.OutOrderNo, b.DetailID, b.ReceiverType, b.Account, pipeline.FormatMinor(b.Amount, b.Currency), string(b.Currency),
			b.ExchangeRate, typ, b.Status, b.Description}
		for i := range rec {
			rec[i] = "`" + rec[i]
		}
		w.Write(rec)
	}
	w.Write([]string{l.Summary, "total_amount"})
	w.Write([]string{"`" + strconv.Itoa(len(lines)), "`" + formatChecksum(total)})
	w.Flush()
	return buf.Bytes(), w.Error()
}

// formatChecksum writes a total in thousandths with the yuan's two
// decimals when it has no third (as WeChat Pay writes it), else three.
func formatChecksum(milli int64) string {
	if milli%10 == 0 {
		return pipeline.FormatMinor(milli/10, "CNY")
	}
	return pipeline.FormatMinor(milli, checksumUnit)
}

// FormatBill writes lines as a bill in DefaultBillLayout.
func FormatBill(lines []BillLine) ([]byte, error) { return DefaultBillLayout.Format(lines) }
