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

// TradeFileHeader is the exact header row of a trade-details file (our
// assumed columns, those of pipeline.TradeRow; amounts are decimals in major
// units of the file's currency, trade_time RFC 3339). An order has at most
// one SALE and one REFUND row.
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
	sum      [sha256.Size]byte
	left     int  // non-final answers still to give
	received bool // RECEIVED was answered
	credited bool // SellerAmount was added to the seller's available share
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

// RefuseOrder makes every later trade file that lists orderNo FAILED, with
// reason for that row in its error file: how Infinia refuses a trade it
// will not take (for tests of the refused-file path).
func (s *Server) RefuseOrder(orderNo, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused = map[string]string{}
	}
	s.refused[orderNo] = reason
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
	refused := maps.Clone(s.refused)
	s.mu.Unlock()
	h := sha256.New()
	problems, err := validate(io.TeeReader(r, h), &u.FileUpload, refused)
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
		s.errorFiles[u.RequestNo] = errorFile(problems)
	}
	if s.polls > 0 {
		u.left = s.polls + 1 // RECEIVED, then Polls times PROCESSING
	}
	s.uploads[u.RequestNo] = u
	return nil
}

func (s *Server) failDuplicate(u *upload) {
	if u.credited {
		s.available[account{u.SellerID, u.Currency}] -= u.SellerAmount
		u.credited = false
	}
	u.Status = infiniapay.StatusFailed
	s.errorFiles[u.RequestNo] = errorFile([]problem{{0, "", "duplicate requestNo: a different file was uploaded with it"}})
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
	cur, err := pipeline.ParseCurrency(parts[3])
	if err != nil {
		return nil, bad(err.Error())
	}
	if _, err := time.Parse("20060102", parts[4]); err != nil {
		return nil, bad("date is not YYYYMMDD")
	}
	return &upload{FileUpload: FileUpload{RequestNo: parts[5], SellerID: parts[2], Currency: cur, Date: parts[4]}}, nil
}

// validate reads a trade file, counting rows and the SALE seller amounts
// into u; it returns the content problems, and an error only for I/O.
func validate(r io.Reader, u *FileUpload, refused map[string]string) ([]problem, error) {
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
		return []problem{{1, "", "empty file: want the header " + TradeFileHeader}}, nil
	case csvError(err):
		return []problem{{1, "", "CSV: " + err.Error()}}, nil
	case err != nil:
		return nil, err
	case strings.Join(head, ",") != TradeFileHeader:
		return []problem{{1, "", "header is not " + TradeFileHeader}}, nil
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
		if len(rec) != 8 {
			add(line, rec[0], "want 8 fields, got %d", len(rec))
			continue
		}
		// An order has at most one SALE and one REFUND row in a file.
		orderNo, key := rec[0], rec[0]+"\x00"+rec[1]
		if orderNo == "" {
			add(line, "", "empty order_no")
		} else if first, dup := seen[key]; dup {
			add(line, orderNo, "duplicate %s row for order_no (first on line %d)", rec[1], first)
		} else {
			seen[key] = line
		}
		for _, why := range checkRow(rec, u) {
			add(line, orderNo, "%s", why)
		}
		if why, ok := refused[orderNo]; ok {
			add(line, orderNo, "%s", why)
		}
	}
	return probs, nil
}

// checkRow checks one 8-field row and adds a good SALE's seller amount.
func checkRow(rec []string, u *FileUpload) []string {
	var whys []string
	if rec[1] != "SALE" && rec[1] != "REFUND" {
		whys = append(whys, "trade_type must be SALE or REFUND")
	}
	if rec[3] != string(u.Currency) {
		whys = append(whys, fmt.Sprintf("currency %q is not the file's %s", rec[3], u.Currency))
	}
	var amt [3]int64
	okAmounts := true
	for i, col := range []string{"amount", "commission", "seller_amount"} {
		v, err := pipeline.ParseMinor(rec[4+i], u.Currency)
		switch {
		case err != nil:
			whys, okAmounts = append(whys, col+" is not an exact "+string(u.Currency)+" amount"), false
		case v < 0:
			whys, okAmounts = append(whys, col+" is negative"), false
		}
		amt[i] = v
	}
	if _, err := time.Parse(time.RFC3339, rec[7]); err != nil {
		whys = append(whys, "trade_time is not RFC 3339")
	}
	if okAmounts && rec[1] == "SALE" {
		if parts, err := pipeline.Add(amt[1], amt[2]); err != nil || parts > amt[0] {
			whys = append(whys, "commission + seller_amount exceeds amount")
		}
	}
	if len(whys) == 0 && rec[1] == "SALE" {
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

// errorFile renders problems as the error file: line,order_no,reason.
func errorFile(probs []problem) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"line", "order_no", "reason"})
	for _, p := range probs {
		w.Write([]string{strconv.Itoa(p.line), p.orderNo, p.reason})
	}
	w.Flush()
	return b.Bytes()
}

// uploadStatus answers RECEIVED, then PROCESSING for Polls queries (a
// Stuck fault adds Fault.Polls more), then the final status; the seller's
// available share is credited when SUCCESS is first shown.
func (s *Server) uploadStatus(c call) answer {
	if a, ok := c.require("requestNo"); !ok {
		return a
	}
	u, seen := s.uploads[c.req["requestNo"]]
	if !seen {
		return notFound("requestNo")
	}
	if c.fault.Kind == fault.Stuck {
		u.left += c.fault.Polls
	}
	v := map[string]string{"requestNo": u.RequestNo, "sellerId": u.SellerID, "currency": string(u.Currency)}
	switch {
	case u.left > 0 && !u.received:
		u.left--
		u.received = true
		v["status"] = infiniapay.StatusReceived
	case u.left > 0:
		u.left--
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
