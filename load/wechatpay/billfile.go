package wechatpay

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// The distribution bill's layout is not public for the global API; this
// one is assumed, after the mainland bills: UTF-8 CSV, a header row
// (BillHeader), one row per successful receiver line with every value
// prefixed by "`" (so spreadsheets keep long ids as text), then a summary:
// a row "Total count,Total amount" and a row with both values. Amounts are
// in major units of the row's currency (yuan for CNY); times are Beijing
// time (UTC+8), "2006-01-02 15:04:05".
const (
	BillHeader        = "Distribution time,Sub-merchant ID,Transaction ID,Out order No,Order ID,Detail ID,Type,Receiver type,Receiver account,Currency,Amount,Description"
	BillSummaryHeader = "Total count,Total amount"
	BillTimeLayout    = "2006-01-02 15:04:05"
)

// Bill line types: a distribution to a receiver, or the rest unfrozen for
// the seller.
const (
	BillDistribution = "DISTRIBUTION"
	BillUnfreeze     = "UNFREEZE"
)

// Beijing is the time zone of WeChat Pay's dates and bill times (UTC+8, no
// daylight saving).
var Beijing = time.FixedZone("CST", 8*3600)

// BillLine is one row of a distribution bill.
type BillLine struct {
	Time          time.Time
	SubMchID      string
	TransactionID string
	OutOrderNo    string
	OrderID       string
	DetailID      string
	Type          string // BillDistribution or BillUnfreeze
	ReceiverType  string
	Account       string
	Currency      pipeline.Currency
	Amount        int64 // minor units
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

// ParseBill reads a distribution bill (see BillHeader) and checks its
// summary against its rows.
func ParseBill(data []byte) ([]BillLine, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil || strings.Join(header, ",") != BillHeader {
		return nil, &BillError{Line: 1, Err: errors.New("not the bill header")}
	}
	var lines []BillLine
	var total int64
	for {
		rec, err := r.Read()
		line, _ := r.FieldPos(0)
		if err == io.EOF {
			return nil, &BillError{Line: line, Err: errors.New("no summary")}
		}
		if err != nil {
			return nil, &BillError{Line: line, Err: err}
		}
		if strings.Join(rec, ",") == BillSummaryHeader {
			return lines, checkSummary(r, len(lines), total)
		}
		l, err := billLine(rec)
		if err == nil {
			total, err = pipeline.Add(total, l.Amount)
		}
		if err != nil {
			return nil, &BillError{Line: line, Err: err}
		}
		lines = append(lines, l)
	}
}

func billLine(rec []string) (BillLine, error) {
	if len(rec) != 12 {
		return BillLine{}, fmt.Errorf("%d fields, want 12", len(rec))
	}
	for i := range rec {
		rec[i] = strings.TrimPrefix(rec[i], "`")
	}
	at, err := time.ParseInLocation(BillTimeLayout, rec[0], Beijing)
	if err != nil {
		return BillLine{}, fmt.Errorf("time %q: want %s", clip(rec[0]), BillTimeLayout)
	}
	cur, err := pipeline.ParseCurrency(rec[9])
	if err != nil {
		return BillLine{}, err
	}
	amount, err := pipeline.ParseMinor(rec[10], cur)
	if err != nil {
		return BillLine{}, err
	}
	if rec[6] != BillDistribution && rec[6] != BillUnfreeze {
		return BillLine{}, fmt.Errorf("type %q", clip(rec[6]))
	}
	return BillLine{Time: at, SubMchID: rec[1], TransactionID: rec[2], OutOrderNo: rec[3], OrderID: rec[4], DetailID: rec[5],
		Type: rec[6], ReceiverType: rec[7], Account: rec[8], Currency: cur, Amount: amount, Description: rec[11]}, nil
}

// checkSummary reads the summary row: the count of rows and their total in
// yuan (every distribution is in CNY today).
func checkSummary(r *csv.Reader, count int, total int64) error {
	rec, err := r.Read()
	line, _ := r.FieldPos(0)
	if err != nil || len(rec) != 2 {
		return &BillError{Line: line, Err: errors.New("want the summary row: count and total amount")}
	}
	n, err := strconv.Atoi(strings.TrimPrefix(rec[0], "`"))
	if err != nil || n != count {
		return &BillError{Line: line, Err: fmt.Errorf("summary count %q, the bill has %d rows", clip(rec[0]), count)}
	}
	sum, err := pipeline.ParseMinor(strings.TrimPrefix(rec[1], "`"), "CNY")
	if err != nil || sum != total {
		return &BillError{Line: line, Err: fmt.Errorf("summary total %q, the rows add up to %s", clip(rec[1]), pipeline.FormatMinor(total, "CNY"))}
	}
	if _, err := r.Read(); err != io.EOF {
		return &BillError{Line: line + 1, Err: errors.New("data after the summary")}
	}
	return nil
}

// FormatBill writes lines as a bill in the layout ParseBill reads.
func FormatBill(lines []BillLine) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(strings.Split(BillHeader, ","))
	var total int64
	for _, l := range lines {
		var err error
		if total, err = pipeline.Add(total, l.Amount); err != nil {
			return nil, err
		}
		rec := []string{l.Time.In(Beijing).Format(BillTimeLayout), l.SubMchID, l.TransactionID, l.OutOrderNo, l.OrderID,
			l.DetailID, l.Type, l.ReceiverType, l.Account, string(l.Currency), pipeline.FormatMinor(l.Amount, l.Currency), l.Description}
		for i := range rec {
			rec[i] = "`" + rec[i]
		}
		w.Write(rec)
	}
	w.Write(strings.Split(BillSummaryHeader, ","))
	w.Write([]string{"`" + strconv.Itoa(len(lines)), "`" + pipeline.FormatMinor(total, "CNY")})
	w.Flush()
	return buf.Bytes(), w.Error()
}
