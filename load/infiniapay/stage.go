package infiniapay

import (
	"context"
	"io"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// API is what the Infinia stages need of Infinia Pay's API. Amounts are
// minor units; sellers are named by their Infinia seller id.
type API interface {
	// UploadStatus returns the status of trade file f's upload and, when
	// FAILED, the link to its error file; pipeline.ErrNotFound if Infinia
	// has never seen its requestNo. An answer about another seller or
	// currency than f's is one that cannot be used (ErrAnswer).
	UploadStatus(ctx context.Context, f pipeline.TradeFile) (status, errorURL string, err error)
	// ErrorRows fetches a failed upload's error file.
	ErrorRows(ctx context.Context, url string) ([]pipeline.ProviderReject, error)
	// BindingStatus returns a seller's binding status (PENDING, ACTIVE, ...).
	BindingStatus(ctx context.Context, requestNo, infiniaID string) (string, error)
	// Balance returns the platform account's available balance.
	Balance(ctx context.Context, requestNo string, cur pipeline.Currency) (int64, error)
	// AvailableShare returns what Infinia says the seller may be paid.
	AvailableShare(ctx context.Context, requestNo, infiniaID string, cur pipeline.Currency) (int64, error)
}

// FileUploader puts files on Infinia's SFTP server atomically
// (load.SFTPSession). Upload is called for many files at once.
type FileUploader interface {
	// Connect makes sure the server can be reached and is the one we trust
	// (host key), before any file is planned for it.
	Connect(ctx context.Context) error
	Upload(ctx context.Context, name string, size int64, sha256 string, open func() (io.ReadCloser, error)) error
	// Stat reports whether the file exists under its final name, and its size.
	Stat(ctx context.Context, name string) (int64, bool, error)
	// FinishUpload ends an upload of size bytes whose error (lastError,
	// wrapping pipeline.ErrDeliveryUnknown) said its delivery was unknown,
	// when what the error names shows it never happened and can be ended
	// now (load.SFTPSession: the temporary file whose rename into place was
	// asked for is still there, and is renamed). landed: the file is under
	// its final name now; false: only Infinia can tell.
	FinishUpload(ctx context.Context, name string, size int64, lastError string) (landed bool, err error)
}

// Store is what the Infinia stages need of the ledger.
type Store interface {
	pipeline.EffectStore
	LatestEffect(ctx context.Context, kind, subject string) (pipeline.Effect, bool, error)
	// AccountsAt returns, by seller id, the run's sellers' accounts at
	// provider (those with one).
	AccountsAt(ctx context.Context, runID int64, provider string) (map[string]string, error)
	// AccountOf returns one seller's account at provider recorded with
	// the run ("" when none), or, for a seller the run did not record
	// (paid only its carried balance), the latest one recorded.
	AccountOf(ctx context.Context, runID int64, provider, sellerID string) (string, error)
	// EachUnfiled streams the run's items in no trade file yet, summed by
	// seller and currency, with the last attempt of the run's files of
	// each (0: none) and the number of groups in all.
	EachUnfiled(ctx context.Context, runID int64, channels []pipeline.Channel, fn func(p pipeline.Payable, lastAttempt, groups int) error) error
	ItemsForTrade(ctx context.Context, runID int64, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, requestNo string, fn func(pipeline.Split) error) error
	RecordTradeFile(ctx context.Context, f pipeline.TradeFile, channels []pipeline.Channel) (pipeline.TradeFile, error)
	FinishTradeFile(ctx context.Context, f pipeline.TradeFile, refused []pipeline.ProviderReject, to, reason string) error
	// SetFileItemsReason gives the items still in file f whose reason
	// begins with from ("": any) the reason to, leaving them in the file:
	// the hold of a file Infinia lost, and its release once Infinia
	// knows the file.
	SetFileItemsReason(ctx context.Context, f pipeline.TradeFile, from, to string) error
	// HoldWaiting gives the run's items of a seller and currency in the
	// channels that wait in state (recorded: in no trade file; uploaded:
	// covered by no payout) and have no reason the reason hold, their
	// state left as it is, nothing carried; ReleaseWaiting takes it back
	// from every item of the run in state that has it. The hold of a
	// date past Infinia's memory (pastHold).
	HoldWaiting(ctx context.Context, runID int64, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, state, hold string) (int64, error)
	ReleaseWaiting(ctx context.Context, runID int64, channels []pipeline.Channel, state, hold string) (int64, error)
	// HoldPayoutItems gives the run's uploaded items of a seller and
	// currency that the payout planned under key covers, and that have no
	// reason, the reason hold, as HoldWaiting does (ReleaseWaiting of
	// uploaded items takes it back): the orders of a revenue share the
	// ledger holds planned and never sent, held past Infinia's memory.
	HoldPayoutItems(ctx context.Context, runID int64, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, key, hold string) (int64, error)
	// OpenTradeFiles returns up to n of the run's files Infinia has not
	// decided yet, with ids above after, by id; TradeFileCounts counts the
	// run's files, all, accepted and refused; RefusedTradeFiles lists the
	// first n refused ones, by id.
	OpenTradeFiles(ctx context.Context, runID, after int64, n int) ([]pipeline.TradeFile, error)
	TradeFileCounts(ctx context.Context, runID int64) (all, accepted, refused int, err error)
	RefusedTradeFiles(ctx context.Context, runID int64, n int) ([]pipeline.TradeFile, error)
	SetItemsState(ctx context.Context, runID int64, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, from, to, reason, payoutKey, ref string) (int64, error)
	SetBinding(ctx context.Context, b pipeline.Binding) error
	// EachPayoutCandidate streams what the run may pay each seller in
	// each currency: its uploaded items and the seller's carried balance
	// (adjustments), with the seller's account at provider; see
	// DistributeStage.
	EachPayoutCandidate(ctx context.Context, run *pipeline.Run, channels []pipeline.Channel, provider string, fn func(pipeline.PayoutCandidate) error) error
	// The payouts planning checked, kept in the ledger until their
	// currency's balance is checked: kept, summed by currency, read back
	// by seller, forgotten.
	AddPayoutCandidates(ctx context.Context, runID int64, kind string, ps []pipeline.PayoutCandidate) error
	PayoutCandidateTotals(ctx context.Context, runID int64, kind string) ([]pipeline.Money, error)
	PayoutCandidatesAfter(ctx context.Context, runID int64, kind string, cur pipeline.Currency, afterSeller string, n int) ([]pipeline.PayoutCandidate, error)
	ClearPayoutCandidates(ctx context.Context, runID int64, kind string) error
	// PayingRuns returns the other runs paying payouts of a kind now
	// (their lock held: the other shards of the day, another date's run);
	// OutstandingInCurrency and OutstandingOf what those runs keep to check
	// beyond what the run's own kept payouts hold (a carried balance both
	// net, once) and have recorded that the provider has not taken yet, in
	// a currency, and by seller (kept) and subject (recorded): what they
	// may still take from the platform balance and the sellers' available
	// shares, which planning checks (planCurrency); OutstandingOf also the
	// sellers' open carried balances now, as PlanPayout sums them.
	PayingRuns(ctx context.Context, runID int64, kind string) ([]*pipeline.Run, error)
	OutstandingInCurrency(ctx context.Context, run *pipeline.Run, runIDs []int64, kind string, cur pipeline.Currency) (int64, error)
	OutstandingOf(ctx context.Context, run *pipeline.Run, runIDs []int64, kind string, cur pipeline.Currency, sellers, subjects []string) (kept, recorded, carried map[string]int64, err error)
	// LatestFailed returns the run's effects of a kind whose subject's
	// latest attempt failed; EffectsByID the effects with those ids.
	LatestFailed(ctx context.Context, runID int64, kind string) ([]pipeline.Effect, error)
	EffectsByID(ctx context.Context, ids []int64) ([]pipeline.Effect, error)
	// OpenEffectsAfter pages, by id, through the run's effects of a kind
	// not final yet.
	OpenEffectsAfter(ctx context.Context, runID int64, kind string, after int64, n int) ([]pipeline.Effect, error)
	// UnappliedPayouts returns the run's succeeded revenue shares whose
	// netted carried items are not marked paid yet (the run stopped in
	// between).
	UnappliedPayouts(ctx context.Context, runID int64, kind string) ([]pipeline.Effect, error)
	BlockedByLateRefunds(ctx context.Context, channels []pipeline.Channel) (map[pipeline.SellerCurrency]string, error)
	// SellerHolds returns the run's items held for their sellers'
	// accounts (pipeline.SellerHoldPrefix), by seller, channel and
	// currency.
	SellerHolds(ctx context.Context, runID int64) ([]pipeline.SellerHold, error)
	// SellersRejectedHeld returns the run's items a person rejected
	// while they were held for their sellers' accounts
	// (pipeline.RejectedSellerHold), by seller, channel and currency.
	SellersRejectedHeld(ctx context.Context, runID int64) ([]pipeline.SellerHold, error)
	CarryItems(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, subject, reason string) (amount, items int64, err error)
	PlanPayout(ctx context.Context, run *pipeline.Run, sellerID string, channels []pipeline.Channel, e pipeline.Effect) (pipeline.Effect, error)
	PayoutSucceeded(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, e pipeline.Effect) error
	PayoutFailed(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, e pipeline.Effect, reason string) error
	PayoutFailedHeld(ctx context.Context, run *pipeline.Run, sellerID string, cur pipeline.Currency, channels []pipeline.Channel, e pipeline.Effect, hold string) error
	// HoldCarriedWithDate holds with the run's date the open carried
	// balance, up to the date, of the sellers whose items of the run have
	// the reason hold: netted into no revenue share until
	// ReleaseCarriedWithDate, by a run of the date, and then into the
	// date's. It returns the sellers and currencies held;
	// ReleaseCarriedWithDate how many it released.
	HoldCarriedWithDate(ctx context.Context, run *pipeline.Run, channels []pipeline.Channel, hold string) ([]pipeline.SellerCurrency, error)
	ReleaseCarriedWithDate(ctx context.Context, run *pipeline.Run) (int, error)
	// CarriedHeldGoneFromDate lists the sellers and currencies whose
	// balance is held with the run's date and of whom the date has no
	// item in channels any more (a re-extract dropped their orders): held
	// still, for a person to release.
	CarriedHeldGoneFromDate(ctx context.Context, run *pipeline.Run, channels []pipeline.Channel) ([]pipeline.SellerCurrency, error)
}

// Effect kinds of the Infinia stages.
const (
	KindUpload       = "upload"
	KindRevenueShare = "revenue_share"
)

// DefaultUploads is how many trade files are uploaded at once over the
// one SFTP session when StageConfig.Parallel is 0: SFTP pipelines the
// requests of many files over one connection, so the uploads are bounded
// by the link, not by round trips.
const DefaultUploads = 32

// DefaultLostAfter is StageConfig.LostAfter's default: Infinia picks a
// trade file up within minutes (assumed; PROVIDERS.md), so a file it
// still does not know a day after its upload is lost, not late.
const DefaultLostAfter = 24 * time.Hour

// DefaultMaxAttempts is how many attempts a revenue share of a seller,
// currency and date gets (StageConfig.MaxAttempts' default): after that
// many failed, it is held for a person.
const DefaultMaxAttempts = 3

// StageConfig configures the Infinia stages.
type StageConfig struct {
	Store   Store
	API     API
	SFTP    FileUploader
	Payouts pipeline.EffectSender // revenue sharing, keyed by Effect.Key
	// Answers is where Payouts keeps Infinia's answers
	// (RevenueShareSender.Answers), and Final the matcher's final answers
	// (MatcherConfig.Final): a revenue share the stage makes final on an
	// answer that agrees with the ledger in everything the matcher
	// compares is recorded final there once the ledger has it, and the
	// run's reconciliation does not ask about it again. Either nil:
	// nothing is recorded.
	Answers *ShareAnswers
	Final   pipeline.FinalAnswers
	// Channels are the channels whose items go into trade files and are
	// paid by revenue sharing (Infinia's own and Pay Protocol's: an item
	// of a channel whose provider verifies payments is recorded only once
	// verified, so it joins a file then).
	Channels   []pipeline.Channel
	PlatformID string
	WorkDir    string // where trade files are built; one folder per date
	// WriteFile builds a trade file from rows (Client.WriteTradeFile).
	WriteFile func(dir, name string, rows func(func(pipeline.TradeRow) error) error) (path, sha256 string, bytes int64, n int, err error)
	// Rows turns a split into its trade-detail rows (transform.TradeRows).
	Rows func(pipeline.Split) []pipeline.TradeRow
	// FileName names a trade file; nil is TradeFileName. The provider's
	// adapter may write the currency as the provider spells it.
	FileName func(platformID, infiniaID string, cur pipeline.Currency, d pipeline.Date, requestNo string) (string, error)
	// Pacer keeps to Infinia's limits for its API (binding, balance,
	// revenue shares, upload statuses); nil: no limit.
	Pacer *pipeline.Pacer
	// Parallel is how many files are uploaded at once over the SFTP
	// session (0: DefaultUploads).
	Parallel int
	// Wait bounds the wait for final outcomes once the requests are sent
	// (default 10m), for all of them together, not for each: what is
	// still processing then is left to the next run.
	Wait time.Duration
	// FirstPoll is how long after a revenue share is sent it is first
	// asked about (Infinia's typical processing time; default Poll); Poll
	// is the interval between later waves of queries (default 1s).
	FirstPoll, Poll time.Duration
	MaxAttempts     int // revenue-share attempts per payout (default DefaultMaxAttempts)
	// LostAfter is how long after its upload a trade file Infinia says it
	// does not know (not found) is taken as landed and not yet picked up
	// (default 24h); past it, as lost by Infinia: held for a person with
	// that reason (exit 4), asked again by every run, never uploaded
	// again by settle. Now is the clock it is measured with (nil:
	// time.Now).
	LostAfter time.Duration
	Now       func() time.Time
	// Memory is how long Infinia's status query is taken to remember a
	// requestNo (NewProvider: ProviderConfig.Memory, DefaultMemory when
	// 0; here 0 is no limit, no date held). A date that ended longer ago (by Now)
	// builds no new trade file and plans no new revenue share, and a
	// request of it the ledger holds never sent is not sent
	// (pipeline.DatePastMemory): its requestNo is a function of the date,
	// and a run the ledger does not hold may have sent it; those sellers
	// are held for a person (exit 4), nothing carried. A seller's carried
	// balance alone is left open for a later date's revenue share (keyed
	// by that date). SendPastMemory lifts it: a person checked the date in
	// Infinia's statements.
	Memory         time.Duration
	SendPastMemory bool
	// MinPayout is the smallest revenue share sent per currency (minor
	// units); a smaller net is carried to the seller's next one.
	MinPayout map[pipeline.Currency]int64
}

func (c *StageConfig) defaults() {
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultUploads
	}
	if c.Wait <= 0 {
		c.Wait = 10 * time.Minute
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.LostAfter <= 0 {
		c.LostAfter = DefaultLostAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FileName == nil {
		c.FileName = TradeFileName
	}
}

// pastHold is the reason of the orders of a date past Infinia's memory
// that the stages hold (pastMemory): in no trade file (none is built), in
// one never uploaded (none is uploaded), uploaded and covered by no
// revenue share (none is planned), or covered by one the ledger holds
// planned and never sent (it is not sent). Their state is left as it is
// and nothing is carried - a later date's revenue share would pay what
// one of this date, sent by a run the ledger does not hold, may have paid
// - but the reports and settle status count them held for a person, not
// in progress (they showed in progress: found by a review). A run the
// guard no longer holds the date for (given --send-past-memory, or a
// longer --infinia-query-memory) takes it back (releasePast) before it
// builds, uploads or plans anything.
const pastHold = pipeline.HeldPrefix + "nothing sent: the date is past Infinia's memory (--infinia-query-memory), its requestNos perhaps sent before and forgotten; " +
	"a person checks the date in Infinia's statements, then runs it with --send-past-memory or records it by hand"

// releasePast takes pastHold back from the run's items in state when the
// guard does not hold the run's date (past, pastMemory's word, is nil):
// they go out now, in progress again. That is so with SendPastMemory and
// as much with a Memory that now reaches the date: released only with the
// flag, the orders an earlier run held stayed named held while a run
// given a longer --infinia-query-memory paid them (found by a review).
//
// A run's first attempt held nothing before (the guard holds within a run
// whatever it holds the date for, and releases nothing then): it skips the
// release, an UPDATE walking the run's items (0.4-0.6 s at 1,000,000), on
// the nights that are nearly all first attempts.
func (c *StageConfig) releasePast(ctx context.Context, run *pipeline.Run, state pipeline.ItemState, past error) error {
	if past != nil || run.Attempts <= 1 {
		return nil
	}
	_, err := c.Store.ReleaseWaiting(ctx, run.ID, c.Channels, state, pastHold)
	return err
}

// pastMemory is pipeline.DatePastMemory's word on new requests of run's
// date (what names them), nil when they may be sent (SendPastMemory, or
// the date within Infinia's memory).
func (c *StageConfig) pastMemory(run *pipeline.Run, what string) error {
	if c.SendPastMemory {
		return nil
	}
	return pipeline.DatePastMemory(run.Key.Date, run.TimeZone, c.Now(), c.Memory, "Infinia", what)
}
