package pipeline

import (
	"context"
	"io"
	"time"
)

// Infinia upload and binding statuses (PROVIDERS.md; partly assumed).
const (
	UploadSuccess = "SUCCESS"
	UploadFailed  = "FAILED"
	BindingActive = "ACTIVE"
)

// Infinia is what the Infinia stages need of Infinia Pay's API. Amounts are
// minor units; sellers are named by their Infinia seller id.
type Infinia interface {
	// UploadStatus returns the status of a trade-details upload and, when
	// FAILED, the link to its error file; ErrNotFound if Infinia has never
	// seen the requestNo.
	UploadStatus(ctx context.Context, requestNo string) (status, errorURL string, err error)
	// ErrorRows fetches a failed upload's error file.
	ErrorRows(ctx context.Context, url string) ([]ProviderReject, error)
	// BindingStatus returns a seller's binding status (PENDING, ACTIVE, ...).
	BindingStatus(ctx context.Context, requestNo, infiniaID string) (string, error)
	// Balance returns the platform account's available balance.
	Balance(ctx context.Context, requestNo string, cur Currency) (int64, error)
	// AvailableShare returns what Infinia says the seller may be paid.
	AvailableShare(ctx context.Context, requestNo, infiniaID string, cur Currency) (int64, error)
}

// FileUploader puts files on the provider's SFTP server atomically.
type FileUploader interface {
	// Connect makes sure the server can be reached and is the one we trust
	// (host key), before any file is planned for it.
	Connect(ctx context.Context) error
	Upload(ctx context.Context, name string, size int64, sha256 string, open func() (io.ReadCloser, error)) error
	// Stat reports whether the file exists under its final name, and its size.
	Stat(ctx context.Context, name string) (int64, bool, error)
}

// InfiniaStore is what the Infinia stages need of the ledger.
type InfiniaStore interface {
	EffectStore
	LatestEffect(ctx context.Context, kind, subject string) (Effect, bool, error)
	RunSellers(ctx context.Context, runID int64) (map[string]Seller, error)
	Payables(ctx context.Context, runID int64, state string, channels []Channel) ([]Payable, error)
	ItemsForTrade(ctx context.Context, runID int64, sellerID string, cur Currency, channels []Channel, requestNo string, fn func(Split) error) error
	RecordTradeFile(ctx context.Context, f TradeFile, channels []Channel) (TradeFile, error)
	FinishTradeFile(ctx context.Context, f TradeFile, refused []ProviderReject, to, reason string) error
	TradeFiles(ctx context.Context, runID int64) ([]TradeFile, error)
	SetItemsState(ctx context.Context, runID int64, sellerID string, cur Currency, channels []Channel, from, to, reason, payoutKey, ref string) (int64, error)
	SetBinding(ctx context.Context, b Binding) error
	// The seller's carried balance (adjustments): see DistributeInfiniaStage.
	OpenCarries(ctx context.Context, upTo Date) ([]Carry, error)
	EffectsOfKind(ctx context.Context, runID int64, kind string) ([]Effect, error)
	BlockedByLateRefunds(ctx context.Context) (map[SellerCurrency]string, error)
	CarryItems(ctx context.Context, run *Run, sellerID string, cur Currency, channels []Channel, subject, reason string) (amount, items int64, err error)
	PlanPayout(ctx context.Context, run *Run, sellerID string, channels []Channel, e Effect) (Effect, error)
	PayoutSucceeded(ctx context.Context, run *Run, sellerID string, cur Currency, channels []Channel, e Effect) error
	PayoutFailed(ctx context.Context, run *Run, sellerID string, cur Currency, channels []Channel, e Effect, reason string) error
}

// Effect kinds of the Infinia stages.
const (
	KindUpload       = "upload"
	KindRevenueShare = "revenue_share"
)

// InfiniaChannels are the channels whose seller shares Infinia pays. A Pay
// Protocol item joins only once VerifyPayProtocol has verified its payment.
var InfiniaChannels = []Channel{"infiniapay", "payprotocol"}

// InfiniaConfig configures the Infinia stages.
type InfiniaConfig struct {
	Store   InfiniaStore
	API     Infinia
	SFTP    FileUploader
	Payouts EffectSender // revenue sharing, keyed by Effect.Key
	// PayProtocol verifies Pay Protocol payments before their items go into
	// trade files; nil leaves them unverified (never paid).
	PayProtocol PayProtocol
	Verify      VerifyStore
	PlatformID  string
	WorkDir     string // where trade files are built; one folder per date
	// WriteFile builds a trade file from rows (load.WriteTradeFile).
	WriteFile func(dir, name string, rows func(func(TradeRow) error) error) (path, sha256 string, bytes int64, n int, err error)
	// Rows turns a split into its trade-detail rows (transform.TradeRows).
	Rows func(Split) []TradeRow
	// FileName names a trade file; nil is TradeFileName. The provider's
	// adapter may write the currency as the provider spells it.
	FileName func(platformID, infiniaID string, cur Currency, d Date, requestNo string) (string, error)
	// Pacer keeps to Infinia's limits for its API (binding, balance,
	// revenue shares, upload statuses); nil: no limit but Parallel in
	// flight. PayProtocolPacer does the same for Pay Protocol's.
	Pacer, PayProtocolPacer *Pacer
	// Parallel is how many files are uploaded at once over the SFTP
	// session (default 4), and the cap on requests in flight when a Pacer
	// is nil.
	Parallel int
	// Wait bounds the wait for final outcomes once the requests are sent
	// (default 10m), for all of them together, not for each: what is
	// still processing then is left to the next run.
	Wait time.Duration
	// FirstPoll is how long after a revenue share is sent it is first
	// asked about (Infinia's typical processing time; default Poll); Poll
	// is the interval between later waves of queries (default 1s).
	FirstPoll, Poll time.Duration
	MaxAttempts     int // revenue-share attempts per payout (default 3)
	// MinPayout is the smallest revenue share sent per currency (minor
	// units); a smaller net is carried to the seller's next one.
	MinPayout map[Currency]int64
}

func (c *InfiniaConfig) defaults() {
	if c.Pacer == nil {
		c.Pacer = NewPacer(Limits{MaxInFlight: c.Parallel})
	}
	if c.PayProtocolPacer == nil {
		c.PayProtocolPacer = NewPacer(Limits{MaxInFlight: c.Parallel})
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.Wait <= 0 {
		c.Wait = 10 * time.Minute
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.FileName == nil {
		c.FileName = TradeFileName
	}
}
