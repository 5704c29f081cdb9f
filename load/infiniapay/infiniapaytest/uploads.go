package infiniapaytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// TradeFileHeader is the exact header row of a trade-details file in
// infiniapay.DefaultLayout (our assumed columns, those of
// pipeline.TradeRow; amounts are decimals in major units of the file's
// currency, trade_time RFC 3339). An order has at most one SALE and one
// REFUND row. Options.Layout makes the fake expect another layout.
const TradeFileHeader = "order_no,trade_type,product_type,currency,amount,commission,seller_amount,trade_time"

// maxProblems bounds an error file; the last row says it was cut.
const maxProblems = 1000

// FileUpload is a received trade-details file as the fake recorded it;
// Status is its final status (SUCCESS or FAILED), whatever the polls show
// so far.
type FileUpload struct {
	RequestNo    string
	SellerID     string
	Currency     pipeline.Currency
	Date         string // YYYYMMDD from the file name
	Status       string
	Rows         int   // data rows
	SellerAmount int64 // sum of the SALE rows' seller_amount, minor units
}

type upload struct {
	FileUpload
	code     string // the currency code of the file name, as sent
	sum      [sha256.Size]byte
	left     int       // non-final answers still to give
	received bool      // RECEIVED was answered
	ready    time.Time // not final before then either (Options.UploadDelay)
	credited bool      // SellerAmount was added to the seller's available share
}

type problem struct {
	line    int
	orderNo string
	reason  string
}

// Upload returns what the fake holds for requestNo.
func (s *Server) Upload(requestNo string) (FileUpload, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.uploads[requestNo]
	if !ok {
		return FileUpload{}, false
	}
	return u.FileUpload, true
}

// LoseFilesOf makes the fake lose every later trade file of Infinia
// seller sellerID (lose false: take them again): taken from the SFTP
// server and never known, its status query answering not found, as a file
// Infinia lost (for tests of the lost-file path).
func (s *Server) LoseFilesOf(sellerID string, lose bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lose == nil {
		s.lose = map[string]bool{}
	}
	s.lose[sellerID] = lose
}

// RefuseOrder makes every later trade file that lists orderNo FAILED, with
// reason for that row in its error file: how Infinia refuses a trade it
// will not take (for tests of the refused-file path). An empty reason
// takes it again.
func (s *Server) RefuseOrder(orderNo, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		delete(s.refused, orderNo)
		return
	}
	if s.refused == nil {
		s.refused = map[string]string{}
	}
	s.refused[orderNo] = reason
}

// RefuseStatusOf makes every upload-status query about a file of sellerID
// answer code (a definite refusal, e.g. SYS-005) with message: a trade file
// Infinia keeps refusing to report on (for tests of one poisoned file among
// many). An empty code makes it answer again.
func (s *Server) RefuseStatusOf(sellerID, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuseStatus == nil {
		s.refuseStatus = map[string]answer{}
	}
	if code == "" {
		delete(s.refuseStatus, sellerID) // answers again
		return
	}
	s.refuseStatus[sellerID] = refuse(code, "%s", message)
}

// ReceiveFile takes a trade-details file that landed on the SFTP side
// (name may carry a directory). It returns an error only when the file
// cannot be taken at all: a name that is not
// TD_<platformId>_<sellerId>_<currency>_<YYYYMMDD>_<requestNo>.csv, or a
// read error. Content problems make the upload FAILED with an error file,
// as Infinia reports them: by the status query. The same requestNo with the
// same bytes again changes nothing; with other bytes the upload becomes
// FAILED ("duplicate requestNo") and any credit it gave is withdrawn.
func (s *Server) ReceiveFile(name string, r io.Reader) error {
	u, err := s.parseName(path.Base(name))
	if err != nil {
		return err
	}
	s.mu.Lock()
	refused, lose := maps.Clone(s.refused), s.lose[u.SellerID]
	s.mu.Unlock()
	if lose {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	h := sha256.New()
	problems, err := s.validate(io.TeeReader(r, h), u, refused)
	if err != nil {
		return fmt.Errorf("infiniapaytest: read %s: %w", name, err)
	}
	h.Sum(u.sum[:0])
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, seen := s.uploads[u.RequestNo]; seen {
		if prev.sum != u.sum || prev.SellerID != u.SellerID || prev.Currency != u.Currency || prev.Date != u.Date {
			s.failDuplicate(prev)
		}
		return nil
	}
	u.Status = infiniapay.StatusSuccess
	if len(problems) > 0 {
		u.Status = infiniapay.StatusFailed
		s.errorFiles[u.RequestNo] = s.errorFile(problems)
	}
	if s.polls > 0 {
		u.left = s.polls + 1 // RECEIVED, then Polls times PROCESSING
	}
	u.ready = fault.Ready(s.o.Now, s.o.UploadDelay)
	s.uploads[u.RequestNo] = u
	return nil
}

func (s *Server) failDuplicate(u *upload) {
	if u.credited {
		s.available[account{u.SellerID, u.Currency}] -= u.SellerAmount
		u.credited = false
	}
	u.Status = infiniapay.StatusFailed
	s.errorFiles[u.RequestNo] = s.errorFile([]problem{{0, "", "duplicate requestNo: a different file was uploaded with it"}})
}

// parseName reads TD_<platformId>_<sellerId>_<currency>_<YYYYMMDD>_<requestNo>.csv.
func (s *Server) parseName(name string) (*upload, error) {
	bad := func(why string) error {
		return fmt.Errorf("infiniapaytest: trade file name %q: %s", name, why)
	}
	base, isCSV := strings.CutSuffix(name, ".csv")
	parts := strings.Split(base, "_")
	if !isCSV || len(parts) != 6 || parts[0] != "TD" {
		return nil, bad("want TD_<platformId>_<sellerId>_<currency>_<YYYYMMDD>_<requestNo>.csv")
	}
	for _, p := range parts {
		if p == "" {
			return nil, bad("empty field")
		}
	}
	if s.o.PlatformID != "" && parts[1] != s.o.PlatformID {
		return nil, bad("another platform's file")
	}
	if _, err := time.Parse("20060102", parts[4]); err != nil {
		return nil, bad("date is not YYYYMMDD")
	}
	cur, err := parseWire(parts[3])
	if err != nil {
		return nil, bad(err.Error()) // CNY too: Infinia wants CNH
	}
	return &upload{FileUpload: FileUpload{RequestNo: parts[5], SellerID: parts[2], Currency: cur, Date: parts[4]}, code: parts[3]}, nil
}

// validate reads a trade file in the fake's layout, counting rows and the
// SALE seller amounts into u; it returns the content problems, and an error
// only for I/O.
func (s *Server) validate(r io.Reader, u *upload, refused map[string]string) ([]problem, error) {
	l := s.layout
	header := strings.Join(l.Header(), ",")
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var probs []problem
	add := func(line int, orderNo, format string, args ...any) {
		if len(probs) < maxProblems {
			probs = append(probs, problem{line, orderNo, fmt.Sprintf(format, args...)})
		} else if len(probs) == maxProblems {
			probs = append(probs, problem{line, "", "too many errors: the rest were not listed"})
		}
	}
	head, err := cr.Read()
	switch {
	case err == io.EOF:
		return append(probs, problem{1, "", "empty file: want the header " + header}), nil
	case csvError(err):
		return append(probs, problem{1, "", "CSV: " + err.Error()}), nil
	case err != nil:
		return nil, err
	case strings.Join(head, ",") != header:
		return append(probs, problem{1, "", "header is not " + header}), nil
	}
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if csvError(err) {
			var pe *csv.ParseError
			errors.As(err, &pe)
			add(pe.Line, "", "CSV: %v", pe.Err)
			break // the rest cannot be read reliably
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		u.Rows++
		if len(rec) != len(l.Columns) {
			add(line, rec[0], "want %d fields, got %d", len(l.Columns), len(rec))
			continue
		}
		row := map[string]string{}
		for i, c := range l.Columns {
			if c.Field != "" {
				row[c.Field] = rec[i]
			}
		}
		row["trade_type"] = ourTradeType(l, row["trade_type"])
		// An order has at most one SALE and one REFUND row in a file.
		orderNo, key := row["order_no"], row["order_no"]+"\x00"+row["trade_type"]
		if orderNo == "" {
			add(line, "", "empty order_no")
		} else if first, dup := seen[key]; dup {
			add(line, orderNo, "duplicate %s row for order_no (first on line %d)", row["trade_type"], first)
		} else {
			seen[key] = line
		}
		for _, why := range checkRow(l, row, u) {
			add(line, orderNo, "%s", why)
		}
		if why, ok := refused[orderNo]; ok {
			add(line, orderNo, "%s", why)
		}
	}
	return probs, nil
}

// ourTradeType reads a layout's trade-type word back as SALE or REFUND.
func ourTradeType(l infiniapay.Layout, word string) string {
	for ours, theirs := range l.TradeTypes {
		if theirs == word {
			return ours
		}
	}
	return word
}

// checkRow checks one row (by field) and adds a good SALE's seller amount.
func checkRow(l infiniapay.Layout, row map[string]string, u *upload) []string {
	var whys []string
	if t := row["trade_type"]; t != "SALE" && t != "REFUND" {
		whys = append(whys, "trade_type must be SALE or REFUND")
	}
	if c, ok := row["currency"]; ok && c != u.code {
		whys = append(whys, fmt.Sprintf("currency %q is not the file's %s", c, u.code))
	}
	var amt [3]int64
	okAmounts := true
	for i, col := range []string{"amount", "commission", "seller_amount"} {
		v, err := pipeline.ParseMinor(row[col], u.Currency)
		switch {
		case err != nil:
			whys, okAmounts = append(whys, col+" is not an exact "+u.code+" amount"), false
		case v < 0:
			whys, okAmounts = append(whys, col+" is negative"), false
		}
		amt[i] = v
	}
	if _, err := time.Parse(l.TimeFormat, row["trade_time"]); err != nil {
		want := l.TimeFormat
		if want == time.RFC3339 {
			want = "RFC 3339"
		}
		whys = append(whys, "trade_time is not "+want)
	}
	if okAmounts && row["trade_type"] == "SALE" {
		if parts, err := pipeline.Add(amt[1], amt[2]); err != nil || parts > amt[0] {
			whys = append(whys, "commission + seller_amount exceeds amount")
		}
	}
	if len(whys) == 0 && row["trade_type"] == "SALE" {
		sum, err := pipeline.Add(u.SellerAmount, amt[2])
		if err != nil {
			return []string{"seller amounts overflow"}
		}
		u.SellerAmount = sum
	}
	return whys
}

func csvError(err error) bool {
	var pe *csv.ParseError
	return errors.As(err, &pe)
}

// errorFile renders problems as the error file, in the layout's columns
// (line,order_no,reason by default).
func (s *Server) errorFile(probs []problem) []byte {
	e := s.layout.ErrorFile
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	head := []string{e.OrderNo, e.Reason}
	if e.Line != "" {
		head = append([]string{e.Line}, head...)
	}
	w.Write(head)
	for _, p := range probs {
		rec := []string{p.orderNo, p.reason}
		if e.Line != "" {
			rec = append([]string{strconv.Itoa(p.line)}, rec...)
		}
		w.Write(rec)
	}
	w.Flush()
	return b.Bytes()
}

// uploadStatus answers RECEIVED, then PROCESSING for Polls queries (a
// Stuck fault adds Fault.Polls more) and until UploadDelay has passed since
// the file was received, then the final status; the seller's
// available share is credited when SUCCESS is first shown.
func (s *Server) uploadStatus(c call) answer {
	if a, ok := c.require("requestNo"); !ok {
		return a
	}
	u, seen := s.uploads[c.req["requestNo"]]
	if !seen {
		return notFound("requestNo")
	}
	if a, ok := s.refuseStatus[u.SellerID]; ok {
		return a
	}
	if c.fault.Kind == fault.Stuck {
		u.left += c.fault.Polls
	}
	v := map[string]string{"requestNo": u.RequestNo, "sellerId": u.SellerID, "currency": u.code}
	switch {
	case u.left > 0 && !u.received:
		u.left--
		u.received = true
		v["status"] = infiniapay.StatusReceived
	case u.left > 0:
		u.left--
		v["status"] = infiniapay.StatusProcessing
	case fault.Processing(s.o.Now, u.ready) && !u.received:
		u.received = true
		v["status"] = infiniapay.StatusReceived
	case fault.Processing(s.o.Now, u.ready):
		v["status"] = infiniapay.StatusProcessing
	default:
		v["status"] = u.Status
		if u.Status == infiniapay.StatusSuccess && !u.credited {
			s.available[account{u.SellerID, u.Currency}] += u.SellerAmount
			u.credited = true
		}
		if u.Status == infiniapay.StatusFailed {
			v["errorFileUrl"] = c.base + "error-files/" + url.PathEscape(u.RequestNo) + ".csv"
		}
	}
	return success(v)
}

// serveErrorFile serves GET .../error-files/<requestNo>.csv.
func (s *Server) serveErrorFile(w http.ResponseWriter, r *http.Request, file string) {
	s.count("error-files")
	f := s.o.Faults.Next("error-files")
	switch f.Kind {
	case fault.Latency:
		f.Sleep(r)
	case fault.ServerError, fault.Unavailable:
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	case fault.TooMany:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	case fault.Reset, fault.Lost:
		fault.DropConnection(w)
		return
	}
	no, isCSV := strings.CutSuffix(file, ".csv")
	s.mu.Lock()
	body, ok := s.errorFiles[no]
	s.mu.Unlock()
	if !isCSV || !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Write(body)
}
