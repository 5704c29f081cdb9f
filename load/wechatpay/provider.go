package wechatpay

import (
	"cmp"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// ProviderStore is what WeChat Pay's stage and matcher need of the ledger.
type ProviderStore interface {
	Store
	ReconcileStore
}

// ProviderConfig is WeChat Pay as configured for a run.
type ProviderConfig struct {
	Client *Client
	// Receiver is the platform's receiver, paid the commissions; its
	// SubMchID is filled per sub-merchant.
	Receiver NewReceiver
	// MaxRatioBps is WeChat's cap on what a transaction may send out, in
	// basis points of its amount (default 3000): a commission above it is
	// held.
	MaxRatioBps int64
	// MaxFeeBps is the most WeChat Pay's acquiring fee takes of a
	// transaction, in basis points of its amount (StageConfig.MaxFeeBps):
	// what WeChat Pay holds to distribute is the order's amount less it.
	MaxFeeBps int64
	// Currencies are those WeChat Pay distributes (default
	// DistributionCurrency alone): an order in another is held for a
	// person, nothing sent (StageConfig.Currencies).
	Currencies []pipeline.Currency
	// Pacer keeps every request of the run to WeChat Pay's limits: the
	// service provider's bucket, and one per sub-merchant (its lanes are
	// sub-merchant ids). The stage and the matcher share it. nil: no
	// limit but pipeline.DefaultMaxInFlight in flight.
	Pacer *pipeline.Pacer
	// Wait bounds the stage's wait for final outcomes once its requests
	// are sent (default 10m); FirstPoll is how long after a send a
	// request is first asked about (default Poll), Poll between later
	// queries (default 1s).
	Wait, FirstPoll, Poll time.Duration
	Store                 ProviderStore
	// Final keeps the matcher's answers that can no longer change, and
	// those the stage adopted in agreement, so a later reconciliation of
	// the date (the run's own too) does not ask them again; nil: every
	// attempt is asked every time.
	Final pipeline.FinalAnswers
	// Now is the clock (default time.Now): it tells whether a day is over
	// in Beijing, and how long ago a receiver was found under review.
	Now func() time.Time
	// BillLayout is the distribution bill's layout (zero:
	// DefaultBillLayout).
	BillLayout BillLayout
	// Memory is how long WeChat Pay's order query is taken to remember an
	// out_order_no (DistributionSender.Memory; 0: DefaultMemory).
	Memory time.Duration
	// SendPastMemory sends new requests of a date that ended longer ago
	// than Memory (StageConfig.SendPastMemory): a person checked the date
	// in WeChat Pay's records.
	SendPastMemory bool
}

// NewProvider returns WeChat Pay as a provider of a run: its pre-flight
// (Client.Preflight), its checks beside the upload stage (PrepareStage),
// its distribute chain (DistributeStage) and its
// matcher (Matcher), over one Adapter of c.Client, which remembers the
// platform's receiver per sub-merchant for the run.
func NewProvider(c ProviderConfig) pipeline.Provider {
	api := NewAdapter(c.Client, c.Receiver)
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	api.Now, api.BillLayout, api.Memory = c.Now, c.BillLayout, c.Memory
	stage := StageConfig{Store: c.Store, API: api, MaxRatioBps: c.MaxRatioBps, MaxFeeBps: c.MaxFeeBps, Currencies: c.Currencies, Pacer: c.Pacer,
		Wait: c.Wait, FirstPoll: c.FirstPoll, Poll: c.Poll, Final: c.Final, Now: c.Now, Memory: cmp.Or(c.Memory, DefaultMemory), SendPastMemory: c.SendPastMemory}
	return pipeline.Provider{
		Name:       Name,
		Settles:    []pipeline.Channel{Channel},
		Pays:       []string{KindDistribution, KindUnfreeze},
		Preflight:  api.Preflight,
		Prepare:    PrepareStage(stage),
		Distribute: DistributeStage(stage),
		Matchers:   []pipeline.Matcher{Matcher(MatcherConfig{Store: c.Store, API: api, Pacer: c.Pacer, Final: c.Final, Now: c.Now, MaxFeeBps: c.MaxFeeBps, Memory: c.Memory})},
		Close:      func() error { c.Client.CloseIdleConnections(); return nil },
	}
}
