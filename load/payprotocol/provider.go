package payprotocol

import (
	"context"

	"github.com/settlekit/settle/pipeline"
)

// Name names Pay Protocol in summaries, logs and mismatches.
const Name = "payprotocol"

// Store is what the Pay Protocol provider needs of the ledger.
type Store interface {
	VerifyStore
	ReconcileStore
}

// ProviderConfig is what the Pay Protocol provider of a run is built from.
type ProviderConfig struct {
	Client *Client
	Store  Store
	// Pacer keeps to Pay Protocol's limits; the verification and the
	// reconciliation share it, so together they never exceed them. nil:
	// no limit.
	Pacer *pipeline.Pacer
	// Final keeps the reconciliation's answers that can no longer change
	// (MatcherConfig.Final), found by the matcher or already by the
	// verification (Verify); nil: every order is asked every time.
	Final pipeline.FinalAnswers
}

// NewProvider returns Pay Protocol as a provider of a run. It settles the
// payprotocol channel's orders by verifying their payments (its upload
// part, which must run before the part of the provider that files them);
// its pre-flight is one authenticated call; its matcher compares the
// ledger's payments and refunds with Pay Protocol's.
func NewProvider(c ProviderConfig) pipeline.Provider {
	api := Adapter{Client: c.Client}
	if c.Pacer == nil {
		c.Pacer = pipeline.NewPacer(pipeline.Limits{})
	}
	return pipeline.Provider{
		Name:      Name,
		Settles:   []pipeline.Channel{Channel},
		Preflight: c.Client.Preflight,
		Upload: func(ctx context.Context, run *pipeline.Run) (string, error) {
			return Verify(ctx, c.Store, api, c.Pacer, c.Final, run)
		},
		Matchers: []pipeline.Matcher{Matcher(MatcherConfig{Store: c.Store, API: api, Pacer: c.Pacer, Final: c.Final})},
	}
}
