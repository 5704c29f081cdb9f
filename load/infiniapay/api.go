package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// Status values. Bindings: Pending, Active, Frozen, Rejected (assumed;
// Active and Frozen are documented). Uploads: Received, Processing, Success,
// Failed (assumed; Failed is documented). Revenue sharing: Processing,
// Success, Failed (assumed).
const (
	StatusPending    = "PENDING"
	StatusActive     = "ACTIVE"
	StatusFrozen     = "FROZEN"
	StatusRejected   = "REJECTED"
	StatusReceived   = "RECEIVED"
	StatusProcessing = "PROCESSING"
	StatusSuccess    = "SUCCESS"
	StatusFailed     = "FAILED"
)

var (
	bindingStatuses = []string{StatusPending, StatusActive, StatusFrozen, StatusRejected}
	uploadStatuses  = []string{StatusReceived, StatusProcessing, StatusSuccess, StatusFailed}
	shareStatuses   = []string{StatusProcessing, StatusSuccess, StatusFailed}
)

// The API names used in errors, and by the fake as fault endpoints.
const (
	APIBindAccount        = "account-binding/request"
	APIBindingStatus      = "account-binding/query"
	APIUploadStatus       = "trade-details/query"
	APIBalance            = "balance/query"
	APIAvailableShare     = "revenue-sharing/available"
	APIRevenueShare       = "revenue-sharing/request"
	APIRevenueShareStatus = "revenue-sharing/query"
	APIErrorFile          = "error-file"
)

// BindRequest asks Infinia to bind a seller's account to the platform.
type BindRequest struct {
	RequestNo    string // unique, deterministic (e.g. "ABR-20250903-0001")
	SellerID     string
	SellerCertNo string // the seller's registration or identity number
	SellerName   string
	StoreName    string
	StoreURL     string
	EntityType   string // "Corporate" or "Individual"
	Country      string // ISO 3166-1 alpha-3
	Currency     pipeline.Currency
	Note         string // optional
	BacklinkURL  string // optional: where Infinia sends the seller back to
}

// Entity types Infinia publishes for a binding request (entityType).
const (
	EntityCorporate  = "Corporate"
	EntityIndividual = "Individual"
)

// Check says which of r's published enumerations and formats Infinia
// would refuse (SYS-002, naming no field): entityType Corporate or
// Individual, country ISO 3166-1 alpha-3 (three upper-case letters). A
// seller's platform data ("CN", "corporate") was sent as it was, and
// refused every time it was bound, with nothing saying which field:
// BindAccount checks it before sending, and settle sellers bind says it
// as a usage error.
func (r BindRequest) Check() error {
	if r.EntityType != EntityCorporate && r.EntityType != EntityIndividual {
		return fmt.Errorf("entityType %q: want %s or %s", clip(r.EntityType), EntityCorporate, EntityIndividual)
	}
	if len(r.Country) != 3 || strings.Trim(r.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return fmt.Errorf("country %q: want an ISO 3166-1 alpha-3 code (three upper-case letters, e.g. CHN)", clip(r.Country))
	}
	return nil
}

// Binding is a seller's account binding.
type Binding struct {
	SellerID string
	Status   string // StatusPending, StatusActive, StatusFrozen or StatusRejected
}

// Upload is the state of one trade-details file (one seller, one currency).
type Upload struct {
	RequestNo    string
	SellerID     string
	Currency     pipeline.Currency
	Status       string // StatusReceived, StatusProcessing, StatusSuccess or StatusFailed
	ErrorFileURL string // with StatusFailed (published; with StatusSuccess, not described): the rows Infinia refused (see ErrorFile)
}

// Balance is the platform's Infinia account in one currency, minor units.
type Balance struct {
	Currency  pipeline.Currency
	Available int64
	Frozen    int64
}

// RevenueShareRequest pays Amount (minor units, > 0) from the platform's
// account to a seller.
type RevenueShareRequest struct {
	RequestNo string // the idempotency key: deterministic, one per attempt
	SellerID  string
	Currency  pipeline.Currency
	Amount    int64
	// Note is optional: left out when the request would not fit Infinia's
	// published requestData length with it (MaxRequestData), so that a
	// long one (a subject naming a long platform seller id) never keeps a
	// payout from going out. The same request always leaves it out or not.
	Note string
}

// RevenueShareResult is Infinia's word on one revenue-sharing request.
type RevenueShareResult struct {
	RequestNo string
	SellerID  string            // as Infinia echoes it ("" when it does not)
	Currency  pipeline.Currency // as Infinia echoes it ("" when it does not)
	Amount    int64             // minor units, when Currency is set

	Status     string // StatusProcessing, StatusSuccess or StatusFailed
	Reference  string // Infinia's reference, when given
	FailReason string // with StatusFailed

	// amountText is the amount as Infinia wrote it when it echoed no
	// currency: read in the request's currency (reported).
	amountText string
}

// reported returns the amount r reports, in cur, the currency of the
// request it answers: Amount when Infinia echoed a currency (compared
// apart), else the amount it wrote read in cur; ok false when it wrote
// none. An amount echoed without its currency was not compared at all
// (found by a review).
func (r RevenueShareResult) reported(cur pipeline.Currency) (amount int64, ok bool, err error) {
	switch {
	case r.Currency != "":
		return r.Amount, true, nil
	case r.amountText != "":
		amount, err = parseAmount(r.amountText, cur)
		return amount, true, err
	}
	return 0, false, nil
}

// The wire forms: every value a string (PROVIDERS.md); field names for the
// undocumented APIs are assumed.
type (
	wireBind struct {
		RequestNo    string `json:"requestNo"`
		SellerID     string `json:"sellerId"`
		SellerCertNo string `json:"sellerCertNo"`
		SellerName   string `json:"sellerName"`
		StoreName    string `json:"storeName"`
		StoreURL     string `json:"storeUrl"`
		EntityType   string `json:"entityType"`
		Country      string `json:"country"`
		Currency     string `json:"currency"`
		Note         string `json:"note,omitempty"`
		BacklinkURL  string `json:"backlinkUrl,omitempty"`
	}
	wireRedirect struct {
		RequestNo   string `json:"requestNo"`
		RedirectURL string `json:"redirectUrl"`
	}
	wireQuery struct {
		RequestNo string `json:"requestNo"`
		SellerID  string `json:"sellerId,omitempty"`
		Currency  string `json:"currency,omitempty"`
	}
	wireBinding struct {
		SellerID string `json:"sellerId"`
		Status   string `json:"status"`
	}
	wireUpload struct {
		Status       string `json:"status"`
		RequestNo    string `json:"requestNo"`
		SellerID     string `json:"sellerId"`
		Currency     string `json:"currency"`
		ErrorFileURL string `json:"errorFileUrl"`
	}
	wireBalance struct {
		RequestNo string `json:"requestNo"`
		Currency  string `json:"currency"`
		Available string `json:"available"`
		Frozen    string `json:"frozen"`
	}
	wireAvailable struct {
		RequestNo string `json:"requestNo"`
		SellerID  string `json:"sellerId"`
		Currency  string `json:"currency"`
		Available string `json:"available"`
	}
	wireShare struct {
		RequestNo string `json:"requestNo"`
		SellerID  string `json:"sellerId"`
		Currency  string `json:"currency"`
		Amount    string `json:"amount"`
		Note      string `json:"note,omitempty"`
	}
	wireShareResult struct {
		RequestNo  string `json:"requestNo"`
		SellerID   string `json:"sellerId"` // assumed echoed, as the upload status echoes its seller and currency
		Currency   string `json:"currency"`
		Amount     string `json:"amount"`
		Status     string `json:"status"`
		Reference  string `json:"reference"`
		FailReason string `json:"failReason"`
	}
)

func (c *Client) spec(api, path, requestNo string) spec {
	return spec{api: api, path: path, requestNo: requestNo}
}

// echoes refuses (ErrAnswer) an answer that echoes another requestNo than
// the one sp asked with: an answer to another request (another seller's
// binding, another query's balance), whatever else it says. One that
// echoes none is taken, the pages not saying every answer echoes it. Every
// answer's echo is compared but the binding query's (BindingStatus): the
// binding request's, the balance and available share queries' were not,
// and a binding answer about another requestNo gave its redirect link to
// this seller (found by a review).
func (sp spec) echoes(requestNo string) *Error {
	if requestNo != "" && requestNo != sp.requestNo {
		return sp.fail(failBadAnswer, fmt.Errorf("%w: answer for requestNo %q", ErrAnswer, clip(requestNo)))
	}
	return nil
}

// BindAccount asks Infinia to bind a seller and returns the URL to send the
// seller to. Idempotent by RequestNo (assumed), so it is retried.
func (c *Client) BindAccount(ctx context.Context, r BindRequest) (string, error) {
	sp := c.spec(APIBindAccount, c.cfg.Paths.BindAccount, r.RequestNo)
	if r.RequestNo == "" || r.SellerID == "" || !r.Currency.Valid() {
		return "", sp.fail(failLocal, errors.New("requestNo, sellerId and a known currency are required"))
	}
	if err := r.Check(); err != nil {
		return "", sp.fail(failLocal, err)
	}
	in := wireBind{
		RequestNo: r.RequestNo, SellerID: r.SellerID, SellerCertNo: r.SellerCertNo, SellerName: r.SellerName,
		StoreName: r.StoreName, StoreURL: r.StoreURL, EntityType: r.EntityType, Country: r.Country,
		Currency: c.cfg.Currencies.Out(r.Currency), Note: r.Note, BacklinkURL: r.BacklinkURL,
	}
	var out wireRedirect
	if err := c.call(ctx, sp, in, &out); err != nil {
		return "", err
	}
	if err := sp.echoes(out.RequestNo); err != nil {
		return "", err
	}
	if out.RedirectURL == "" {
		return "", sp.fail(failBadAnswer, fmt.Errorf("%w: no redirectUrl", ErrAnswer))
	}
	return out.RedirectURL, nil
}

// BindingStatus returns a seller's binding. requestNo is this query's own
// number (Infinia wants one on every request); the binding is found by
// sellerID. ErrNotFound when Infinia knows no binding for the seller.
func (c *Client) BindingStatus(ctx context.Context, requestNo, sellerID string) (Binding, error) {
	sp := c.spec(APIBindingStatus, c.cfg.Paths.BindingStatus, requestNo)
	var out wireBinding
	if err := c.call(ctx, sp, wireQuery{RequestNo: requestNo, SellerID: sellerID}, &out); err != nil {
		return Binding{}, err
	}
	out.Status = c.cfg.Statuses.In(out.Status)
	if !slices.Contains(bindingStatuses, out.Status) {
		return Binding{}, sp.fail(failBadAnswer, fmt.Errorf("%w: unknown binding status %q", ErrAnswer, clip(out.Status)))
	}
	if out.SellerID != "" && out.SellerID != sellerID {
		return Binding{}, sp.fail(failBadAnswer, fmt.Errorf("%w: answer for seller %q", ErrAnswer, clip(out.SellerID)))
	}
	// Its requestNo is not compared: the query is asked under a number
	// of its own, and the answer may echo the binding request's (the
	// seller status notification carries that one); the seller is.
	return Binding{SellerID: sellerID, Status: out.Status}, nil
}

// UploadStatus returns the state of the trade-details file uploaded with
// requestNo (in its name). ErrNotFound when Infinia has not seen it.
func (c *Client) UploadStatus(ctx context.Context, requestNo string) (Upload, error) {
	sp := c.spec(APIUploadStatus, c.cfg.Paths.UploadStatus, requestNo)
	var out wireUpload
	if err := c.call(ctx, sp, wireQuery{RequestNo: requestNo}, &out); err != nil {
		return Upload{}, err
	}
	out.Status = c.cfg.Statuses.In(out.Status)
	if !slices.Contains(uploadStatuses, out.Status) {
		return Upload{}, sp.fail(failBadAnswer, fmt.Errorf("%w: unknown upload status %q", ErrAnswer, clip(out.Status)))
	}
	if err := sp.echoes(out.RequestNo); err != nil {
		return Upload{}, err
	}
	if strings.ContainsRune(out.ErrorFileURL, 0) {
		// Kept in the ledger with the file: PostgreSQL's text refuses a NUL.
		return Upload{}, sp.fail(failBadAnswer, fmt.Errorf("%w: errorFileUrl holds a NUL", ErrAnswer))
	}
	var cur pipeline.Currency
	if out.Currency != "" {
		var err error
		if cur, err = c.cfg.Currencies.In(out.Currency); err != nil {
			return Upload{}, sp.fail(failBadAnswer, fmt.Errorf("%w: %w", ErrAnswer, err))
		}
	}
	return Upload{RequestNo: requestNo, SellerID: out.SellerID, Currency: cur,
		Status: out.Status, ErrorFileURL: out.ErrorFileURL}, nil
}

// Balance returns the platform account's balance in currency c.
func (c *Client) Balance(ctx context.Context, requestNo string, cur pipeline.Currency) (Balance, error) {
	sp := c.spec(APIBalance, c.cfg.Paths.Balance, requestNo)
	var out wireBalance
	code := c.cfg.Currencies.Out(cur)
	if err := c.call(ctx, sp, wireQuery{RequestNo: requestNo, Currency: code}, &out); err != nil {
		return Balance{}, err
	}
	if out.Currency != code {
		return Balance{}, sp.fail(failBadAnswer, fmt.Errorf("%w: balance in %q, asked for %s", ErrAnswer, clip(out.Currency), code))
	}
	if err := sp.echoes(out.RequestNo); err != nil {
		return Balance{}, err
	}
	avail, err1 := parseAmount(out.Available, cur)
	frozen, err2 := parseAmount(out.Frozen, cur)
	if err := errors.Join(err1, err2); err != nil {
		return Balance{}, sp.fail(failBadAnswer, fmt.Errorf("%w: %w", ErrAnswer, err))
	}
	return Balance{Currency: cur, Available: avail, Frozen: frozen}, nil
}

// AvailableShare returns what may still be paid to a seller in currency c
// (minor units), as Infinia counts it from the accepted trade details.
func (c *Client) AvailableShare(ctx context.Context, requestNo, sellerID string, cur pipeline.Currency) (int64, error) {
	sp := c.spec(APIAvailableShare, c.cfg.Paths.AvailableShare, requestNo)
	var out wireAvailable
	code := c.cfg.Currencies.Out(cur)
	if err := c.call(ctx, sp, wireQuery{RequestNo: requestNo, SellerID: sellerID, Currency: code}, &out); err != nil {
		return 0, err
	}
	if out.Currency != code || (out.SellerID != "" && out.SellerID != sellerID) {
		return 0, sp.fail(failBadAnswer, fmt.Errorf("%w: answer for another seller or currency", ErrAnswer))
	}
	if err := sp.echoes(out.RequestNo); err != nil {
		return 0, err
	}
	v, err := parseAmount(out.Available, cur)
	if err != nil {
		return 0, sp.fail(failBadAnswer, fmt.Errorf("%w: %w", ErrAnswer, err))
	}
	return v, nil
}

// RevenueShare asks Infinia to pay r.Amount to r.SellerID. It is retried
// only when Infinia says it did not process the request (a transient code,
// HTTP 429, or no connection made). When the answer never arrived or
// cannot be trusted, the error wraps ErrUnknownOutcome: ask
// RevenueShareStatus with the same requestNo before anything else.
func (c *Client) RevenueShare(ctx context.Context, r RevenueShareRequest) (RevenueShareResult, error) {
	sp := c.spec(APIRevenueShare, c.cfg.Paths.RevenueShare, r.RequestNo)
	sp.money = true
	if r.RequestNo == "" || r.SellerID == "" || !r.Currency.Valid() || r.Amount <= 0 {
		return RevenueShareResult{}, sp.fail(failLocal, fmt.Errorf("want a requestNo, a seller, a known currency and a positive amount (got %d)", r.Amount))
	}
	in := wireShare{RequestNo: r.RequestNo, SellerID: r.SellerID, Currency: c.cfg.Currencies.Out(r.Currency),
		Amount: pipeline.FormatMinor(r.Amount, r.Currency), Note: r.Note}
	if !c.fits(in) {
		in.Note = "" // optional: the payout goes out without it rather than not at all
	}
	var out wireShareResult
	if err := c.call(ctx, sp, in, &out); err != nil {
		return RevenueShareResult{}, err
	}
	res, err := c.shareResult(sp, out)
	if err != nil {
		err.Err = unknown(err.Err) // an answer we cannot read says nothing of the money
		return RevenueShareResult{}, err
	}
	return res, nil
}

// RevenueShareStatus returns Infinia's state of the revenue-sharing request
// requestNo; ErrNotFound when Infinia never saw it (it is then safe to send
// it again with the same requestNo).
func (c *Client) RevenueShareStatus(ctx context.Context, requestNo string) (RevenueShareResult, error) {
	sp := c.spec(APIRevenueShareStatus, c.cfg.Paths.RevenueShareStatus, requestNo)
	var out wireShareResult
	if err := c.call(ctx, sp, wireQuery{RequestNo: requestNo}, &out); err != nil {
		return RevenueShareResult{}, err
	}
	res, err := c.shareResult(sp, out)
	if err != nil {
		return RevenueShareResult{}, err
	}
	return res, nil
}

func (c *Client) shareResult(sp spec, out wireShareResult) (RevenueShareResult, *Error) {
	out.Status = c.cfg.Statuses.In(out.Status)
	if !slices.Contains(shareStatuses, out.Status) {
		return RevenueShareResult{}, sp.fail(failBadAnswer, fmt.Errorf("%w: unknown revenue-sharing status %q", ErrAnswer, clip(out.Status)))
	}
	if err := sp.echoes(out.RequestNo); err != nil {
		return RevenueShareResult{}, err
	}
	// Infinia's words go to the ledger: clipped (a NUL or a megabyte in
	// one payout's reference stopped the stage recording it, every run).
	res := RevenueShareResult{RequestNo: sp.requestNo, SellerID: clip(out.SellerID), Status: out.Status, Reference: clip(out.Reference), FailReason: clip(out.FailReason)}
	if out.Currency != "" {
		cur, err := c.cfg.Currencies.In(out.Currency)
		if err != nil {
			return RevenueShareResult{}, sp.fail(failBadAnswer, fmt.Errorf("%w: %w", ErrAnswer, err))
		}
		amount, err := parseAmount(out.Amount, cur)
		if err != nil {
			return RevenueShareResult{}, sp.fail(failBadAnswer, fmt.Errorf("%w: amount: %v", ErrAnswer, err))
		}
		res.Currency, res.Amount = cur, amount
	} else {
		res.amountText = clip(out.Amount)
	}
	return res, nil
}

// parseAmount reads an amount of an answer in cur (minor units): a
// decimal string in major units. Decimals beyond the currency's exponent
// are taken only when they are zeros (yen written "1000.00", as Infinia's
// examples write two decimals: exactly 1000 yen; refused, every such
// revenue share stayed unknown for good); any other is refused, never
// rounded.
func parseAmount(s string, cur pipeline.Currency) (int64, error) {
	if exp, ok := cur.Exponent(); ok {
		if whole, frac, dot := strings.Cut(s, "."); dot && len(frac) > exp && strings.Trim(frac[exp:], "0") == "" {
			s = whole
			if exp > 0 {
				s += "." + frac[:exp]
			}
		}
	}
	return pipeline.ParseMinor(s, cur)
}
