package infiniapay

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Name names Infinia Pay in summaries, logs and mismatches.
const Name = "infiniapay"

// Session is the SFTP session to Infinia's server (load.SFTPSession): what
// the upload stage needs of it, and Close, which the provider calls when
// the run is over.
type Session interface {
	FileUploader
	Close() error
}

// ProviderStore is what the provider needs of the ledger: its stages' and
// its matcher's.
type ProviderStore interface {
	Store
	ReconcileStore
}

// ProviderConfig configures Infinia Pay as a provider of a run; cmd fills
// it from flags.
type ProviderConfig struct {
	Client *Client
	SFTP   Session
	Store  ProviderStore
	// Channels are the channels whose items Infinia files in trade files
	// and pays by revenue sharing: its own, and those of providers that
	// only take payments (Pay Protocol's, once verified).
	Channels   []pipeline.Channel
	PlatformID string
	WorkDir    string // where trade files are built; one folder per date
	// Rows turns a split into its trade-detail rows (transform.TradeRows).
	Rows func(pipeline.Split) []pipeline.TradeRow
	// Pacer keeps to Infinia's limits for its API; nil: no limit.
	Pacer *pipeline.Pacer
	// Parallel caps the files uploaded at once over the SFTP session
	// (0: DefaultUploads).
	Parallel   int
	Wait, Poll time.Duration // see StageConfig
	FirstPoll  time.Duration
	LostAfter  time.Duration // see StageConfig
	// Memory is how long Infinia's status query is taken to remember a
	// requestNo (RevenueShareSender.Memory; 0: DefaultMemory).
	Memory    time.Duration
	MinPayout map[pipeline.Currency]int64
	// SendPastMemory sends new requests of a date that ended longer ago
	// than Memory (StageConfig.SendPastMemory): a person checked the date
	// in Infinia's statements. Now is the run's clock (nil: time.Now).
	SendPastMemory bool
	Now            func() time.Time
	// Before runs first in the distribute chain (the clawbacks of late
	// refunds, which the revenue shares net); nil: none.
	Before pipeline.StageFunc
	// Final keeps the matcher's final answers (see MatcherConfig), and
	// those of the revenue shares the distribute stage saw final (see
	// StageConfig.Final); nil: every revenue share is asked about at
	// every reconciliation.
	Final pipeline.FinalAnswers
}

// NewProvider returns Infinia Pay as a provider of a run: the trade files'
// upload (after the upload parts of the providers listed before it), the
// revenue shares, and the matching of both with Infinia's word. It settles
// the infiniapay channel; the other channels of c.Channels are settled by
// their own providers and paid by Infinia.
func NewProvider(c ProviderConfig) pipeline.Provider {
	api := stageAPI{c.Client}
	answers := &ShareAnswers{}
	cfg := StageConfig{Store: c.Store, API: api, SFTP: c.SFTP, Channels: c.Channels,
		Payouts: classified{NewRevenueShareSender(c.Client, c.Store, answers, c.LostAfter, c.Memory)},
		Answers: answers, Final: c.Final,
		PlatformID: c.PlatformID, WorkDir: c.WorkDir, Rows: c.Rows, Pacer: c.Pacer, Parallel: c.Parallel,
		Wait: c.Wait, Poll: c.Poll, FirstPoll: c.FirstPoll, LostAfter: c.LostAfter, MinPayout: c.MinPayout,
		Memory: cmp.Or(c.Memory, DefaultMemory), SendPastMemory: c.SendPastMemory, Now: c.Now,
		// Infinia's layout and currency codes: the client writes and names
		// the files (CNY as CNH by default).
		WriteFile: c.Client.WriteTradeFile,
		FileName: func(_, infiniaID string, cur pipeline.Currency, d pipeline.Date, requestNo string) (string, error) {
			return c.Client.TradeFileName(infiniaID, cur, d, requestNo)
		},
	}
	distribute := DistributeStage(cfg)
	if c.Before != nil {
		distribute = pipeline.Combine(c.Before, distribute)
	}
	return pipeline.Provider{
		Name:       Name,
		Settles:    []pipeline.Channel{Channel},
		Pays:       []string{KindRevenueShare},
		Preflight:  func(ctx context.Context) error { return Preflight(ctx, c.Client, c.SFTP) },
		Upload:     UploadStage(cfg),
		Distribute: distribute,
		Matchers: []pipeline.Matcher{NewMatcher(MatcherConfig{Store: c.Store, API: api, Pacer: c.Pacer, Final: c.Final,
			Memory: c.Memory, Now: c.Client.cfg.Now})},
		Close: func() error {
			c.Client.CloseIdleConnections()
			return c.SFTP.Close()
		},
	}
}

// Connector is what Preflight needs of the SFTP session.
type Connector interface {
	// Connect makes sure the server can be reached and is the one we
	// trust, with our key.
	Connect(ctx context.Context) error
}

// Preflight checks, before anything is sent, that Infinia Pay takes our
// credentials (one authenticated balance query: Client.Preflight) and that
// its SFTP server is the one we trust and takes our key. A refusal is of
// kind pipeline.KindUsage (exit 2), one line naming Infinia Pay and what
// was refused; nothing is retried. Other errors (a provider down) come as
// they are.
func Preflight(ctx context.Context, client *Client, sftp Connector) error {
	if err := client.Preflight(ctx); err != nil {
		return err
	}
	if err := sftp.Connect(ctx); err != nil {
		return fmt.Errorf("sftp of Infinia Pay: %w", err)
	}
	return nil
}
