package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/time/rate"

	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
	"github.com/settlekit/settle/transform"
)

// Flags of the Infinia Pay connection.
const (
	flagInfiniaURL     = "infinia-url"
	flagInfiniaAppID   = "infinia-app-id"
	flagPlatformID     = "platform-id"
	flagInfiniaKey     = "infinia-private-key-file"
	flagInfiniaPub     = "infinia-public-key-file"
	flagSFTPAddr       = "sftp-addr"
	flagSFTPUser       = "sftp-user"
	flagSFTPKey        = "sftp-key-file"
	flagSFTPKnownHosts = "sftp-known-hosts"
	flagSFTPDir        = "sftp-dir"
	flagWorkDir        = "work-dir"
	flagProviderWait   = "provider-wait"
	flagProviderRate   = "provider-rate"
	flagProviderPoll   = "provider-poll"
	flagFirstPoll      = "provider-first-poll"
	flagParallel       = "parallel"
	flagInfiniaCur     = "infinia-currencies"
	flagInfiniaLayout  = "infinia-layout"
)

func infiniaFlags() []cli.Flag {
	return append(payProtocolFlags(),
		&cli.StringFlag{Name: flagInfiniaURL, EnvVars: []string{"SETTLE_INFINIA_URL"},
			Usage: "Infinia Pay API base URL, e.g. https://openapi.infiniax.com/api/ (empty: the Infinia stages are not configured and send nothing)"},
		&cli.StringFlag{Name: flagInfiniaAppID, EnvVars: []string{"SETTLE_INFINIA_APP_ID"}, Usage: "our appId at Infinia Pay"},
		&cli.StringFlag{Name: flagPlatformID, EnvVars: []string{"SETTLE_PLATFORM_ID"}, Usage: "our platform id, in trade-detail file names"},
		&cli.StringFlag{Name: flagInfiniaKey, EnvVars: []string{"SETTLE_INFINIA_PRIVATE_KEY_FILE"}, Usage: "our RSA private key (PKCS#8, PEM or Base64)"},
		&cli.StringFlag{Name: flagInfiniaPub, EnvVars: []string{"SETTLE_INFINIA_PUBLIC_KEY_FILE"}, Usage: "Infinia's RSA public key (X.509, PEM or Base64)"},
		&cli.StringFlag{Name: flagSFTPAddr, EnvVars: []string{"SETTLE_SFTP_ADDR"}, Usage: "Infinia's SFTP server, host:port"},
		&cli.StringFlag{Name: flagSFTPUser, EnvVars: []string{"SETTLE_SFTP_USER"}, Usage: "SFTP user"},
		&cli.StringFlag{Name: flagSFTPKey, EnvVars: []string{"SETTLE_SFTP_KEY_FILE"}, Usage: "SFTP private key file"},
		&cli.StringFlag{Name: flagSFTPKnownHosts, EnvVars: []string{"SETTLE_SFTP_KNOWN_HOSTS"}, Usage: "known_hosts file with the SFTP server's host key (required)"},
		&cli.StringFlag{Name: flagSFTPDir, EnvVars: []string{"SETTLE_SFTP_DIR"}, Value: "upload", Usage: "remote directory of trade-detail files"},
		&cli.StringFlag{Name: flagWorkDir, EnvVars: []string{"SETTLE_WORK_DIR"}, Value: "work", Usage: "local directory where trade files are built"},
		&cli.DurationFlag{Name: flagProviderWait, EnvVars: []string{"SETTLE_PROVIDER_WAIT"}, Value: 10 * time.Minute,
			Usage: "how long a stage waits for final statuses once its requests are sent, for all of them together (not for each); what is still processing then is left to the next run (exit 1)"},
		&cli.DurationFlag{Name: flagProviderPoll, EnvVars: []string{"SETTLE_PROVIDER_POLL"}, Value: time.Second,
			Usage: "interval between waves of status queries"},
		&cli.DurationFlag{Name: flagFirstPoll, EnvVars: []string{"SETTLE_PROVIDER_FIRST_POLL"},
			Usage: "how long after a request is sent it is first asked about: the provider's typical processing time (0: --provider-poll)"},
		&cli.Float64Flag{Name: flagProviderRate, EnvVars: []string{"SETTLE_PROVIDER_RATE"}, Value: 20,
			Usage: "requests per second to Infinia, and to Pay Protocol (token buckets; with --shard I/N each shard takes 1/N)"},
		&cli.IntFlag{Name: flagParallel, EnvVars: []string{"SETTLE_PARALLEL"}, Value: 0,
			Usage: "deprecated: a cap on the requests in flight to each provider (0: sized by the provider's rate x its observed latency, at most 256)"},
		&cli.StringFlag{Name: flagInfiniaCur, EnvVars: []string{"SETTLE_INFINIA_CURRENCIES"}, Value: infiniapay.DefaultCurrencies().String(),
			Usage: "currency codes Infinia spells differently, PLATFORM=INFINIA,... (\"none\": none); the ledger and reports keep the platform's"},
		&cli.StringFlag{Name: flagInfiniaLayout, EnvVars: []string{"SETTLE_INFINIA_LAYOUT"},
			Usage: "JSON file with the trade-file columns and the error-file columns to match Infinia's templates (empty: our layout, see the README)"},
	)
}

// shardCount is N of --shard I/N (or of SETTLE_SHARDS with
// JOB_COMPLETION_INDEX), 1 without: the shards of a day run at the same
// time and share each provider's limits, so each takes 1/N of each.
func shardCount(c *cli.Context) int {
	s := c.String(flagShard)
	if s == "" && os.Getenv("JOB_COMPLETION_INDEX") != "" && os.Getenv("SETTLE_SHARDS") != "" {
		s = "0/" + os.Getenv("SETTLE_SHARDS")
	}
	if sh, err := pipeline.ParseShard(s); err == nil && sh.Count > 0 {
		return sh.Count
	}
	return 1
}

// infiniaSetup is the Infinia connection as configured, or nil when
// --infinia-url is empty.
type infiniaSetup struct {
	client     *infiniapay.Client
	ourKey     *rsa.PrivateKey
	theirKey   *rsa.PublicKey
	sftp       *load.SFTPSession
	platformID string
	workDir    string
	wait       time.Duration
	poll       time.Duration
	firstPoll  time.Duration
	rate       float64 // requests per second to Infinia and to Pay Protocol, this shard's part
	parallel   int
	// payProtocol verifies Pay Protocol payments; nil: their orders stay
	// unverified and are not paid.
	payProtocol pipeline.PayProtocol
}

// infiniaParams are the Infinia connection's settings, from flags or from
// the simulator.
type infiniaParams struct {
	URL, AppID, PlatformID, KeyFile, PublicKeyFile   string
	SFTPAddr, SFTPUser, SFTPKey, KnownHosts, SFTPDir string
	WorkDir                                          string
	Currencies                                       string // "": infiniapay.DefaultCurrencies
	LayoutFile                                       string // "": infiniapay.DefaultLayout
	Wait, Poll, FirstPoll                            time.Duration
	Rate                                             float64 // this shard's part
	Parallel                                         int
}

func infiniaFromFlags(c *cli.Context) (*infiniaSetup, error) {
	p := infiniaParams{
		URL: c.String(flagInfiniaURL), AppID: c.String(flagInfiniaAppID), PlatformID: c.String(flagPlatformID),
		KeyFile: c.String(flagInfiniaKey), PublicKeyFile: c.String(flagInfiniaPub), SFTPAddr: c.String(flagSFTPAddr),
		SFTPUser: c.String(flagSFTPUser), SFTPKey: c.String(flagSFTPKey), KnownHosts: c.String(flagSFTPKnownHosts),
		SFTPDir: c.String(flagSFTPDir), WorkDir: c.String(flagWorkDir), Wait: c.Duration(flagProviderWait), Poll: c.Duration(flagProviderPoll),
		Rate: c.Float64(flagProviderRate) / float64(shardCount(c)), Parallel: c.Int(flagParallel), FirstPoll: c.Duration(flagFirstPoll),
		Currencies: c.String(flagInfiniaCur), LayoutFile: c.String(flagInfiniaLayout),
	}
	if p.URL == "" {
		if c.String(flagPPURL) != "" {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagPPURL, "Pay Protocol orders are paid through Infinia: set --%s too", flagInfiniaURL)
		}
		return nil, nil
	}
	required := map[string]string{flagInfiniaAppID: p.AppID, flagPlatformID: p.PlatformID, flagInfiniaKey: p.KeyFile,
		flagInfiniaPub: p.PublicKeyFile, flagSFTPAddr: p.SFTPAddr, flagSFTPUser: p.SFTPUser, flagSFTPKey: p.SFTPKey, flagSFTPKnownHosts: p.KnownHosts}
	for _, f := range []string{flagInfiniaAppID, flagPlatformID, flagInfiniaKey, flagInfiniaPub, flagSFTPAddr, flagSFTPUser, flagSFTPKey, flagSFTPKnownHosts} {
		if required[f] == "" {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+f, "required with --%s", flagInfiniaURL)
		}
	}
	inf, err := newInfinia(p)
	if err != nil {
		return nil, err
	}
	inf.payProtocol, err = payProtocolFromFlags(c, p.Rate)
	return inf, err
}

func newInfinia(p infiniaParams) (*infiniaSetup, error) {
	usage := func(flag string, err error) error { return pipeline.E(pipeline.KindUsage, "--"+flag, err) }
	ours, err := infiniapay.LoadPrivateKey(p.KeyFile)
	if err != nil {
		return nil, usage(flagInfiniaKey, err)
	}
	theirs, err := infiniapay.LoadPublicKey(p.PublicKeyFile)
	if err != nil {
		return nil, usage(flagInfiniaPub, err)
	}
	signer, err := load.LoadSigner(p.SFTPKey)
	if err != nil {
		return nil, usage(flagSFTPKey, err)
	}
	var limiter *rate.Limiter
	if p.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(p.Rate), max(1, int(p.Rate)))
	}
	currencies := infiniapay.DefaultCurrencies()
	if p.Currencies != "" {
		if currencies, err = infiniapay.ParseCurrencies(p.Currencies); err != nil {
			return nil, usage(flagInfiniaCur, err)
		}
	}
	var layout infiniapay.Layout
	if p.LayoutFile != "" {
		if layout, err = infiniapay.LoadLayout(p.LayoutFile); err != nil {
			return nil, usage(flagInfiniaLayout, err)
		}
	}
	client, err := infiniapay.New(infiniapay.Config{BaseURL: p.URL, AppID: p.AppID, PlatformID: p.PlatformID,
		OurKey: ours, InfiniaKey: theirs, HTTP: infiniapay.NewHTTPClient(30 * time.Second), Limiter: limiter,
		Currencies: currencies, Layout: layout})
	if err != nil {
		return nil, usage(flagInfiniaURL, err)
	}
	if p.Poll <= 0 {
		p.Poll = time.Second
	}
	return &infiniaSetup{
		client: client, ourKey: ours, theirKey: theirs,
		sftp: load.NewSFTPSession(load.SFTPConfig{Addr: p.SFTPAddr, User: p.SFTPUser, Signer: signer,
			KnownHostsFile: p.KnownHosts, Dir: p.SFTPDir}),
		platformID: p.PlatformID, workDir: p.WorkDir, wait: p.Wait, poll: p.Poll, firstPoll: p.FirstPoll, rate: p.Rate, parallel: p.Parallel,
	}, nil
}

// provider returns Infinia Pay as a provider of the run over the ledger:
// its upload stage (Pay Protocol's verification first, when configured),
// its distribute chain, which first turns late refunds into clawbacks
// (split again with rules) then nets them, and its matchers.
func (s *infiniaSetup) provider(l *ledger.Ledger, late pipeline.LateRefundSource, window func(pipeline.Date) pipeline.Window,
	rules *transform.Rules, minPayout map[pipeline.Currency]int64, parallel int) pipeline.Provider {
	cfg := pipeline.InfiniaConfig{PayProtocol: s.payProtocol, Verify: l, MinPayout: minPayout,
		Store: l, API: infiniaAPI{s.client}, SFTP: s.sftp, Payouts: classified{infiniapay.RevenueShareSender{Client: s.client, SellerID: infiniaSeller(l)}},
		PlatformID: s.platformID, WorkDir: s.workDir, Rows: transform.TradeRows, Parallel: s.parallel, Wait: s.wait, Poll: s.poll, FirstPoll: s.firstPoll,
		// The effect engine keeps to --provider-rate (each provider's
		// client keeps to it too, for every call); --parallel, when set,
		// caps the requests in flight and the SFTP uploads at once.
		Pacer: pacer(s.rate, 0, s.parallel), PayProtocolPacer: pacer(s.rate, 0, s.parallel),
		// Infinia's layout and currency codes: the client writes and names
		// the files (CNY as CNH by default).
		WriteFile: s.client.WriteTradeFile,
		FileName: func(_, infiniaID string, cur pipeline.Currency, d pipeline.Date, requestNo string) (string, error) {
			return s.client.TradeFileName(infiniaID, cur, d, requestNo)
		},
	}
	p := pipeline.Provider{Name: "infiniapay", Settles: []pipeline.Channel{infiniapay.Channel},
		Preflight:  s.preflight,
		Upload:     pipeline.UploadStage(cfg),
		Distribute: pipeline.Combine(pipeline.ClawBackStage(l, late, window, resplit(rules), channelSpecs()), pipeline.DistributeInfiniaStage(cfg)),
		Matchers:   []pipeline.Matcher{pipeline.InfiniaMatcher(l, infiniaAPI{s.client})},
		Close:      s.sftp.Close,
	}
	if s.payProtocol != nil {
		p.Settles = append(p.Settles, payprotocol.Channel)
		if pp, ok := s.payProtocol.(payProtocolAPI); ok {
			p.Preflight = func(ctx context.Context) error {
				if err := s.preflight(ctx); err != nil {
					return err
				}
				return pp.preflight(ctx)
			}
		}
		if m := payProtocolMatcher(l, s.payProtocol, parallel); m != nil {
			p.Matchers = append(p.Matchers, m)
		}
	}
	return p
}

// infiniaSeller maps a revenue share's subject (which names the platform's
// seller) to the seller's Infinia id, from the run's recorded sellers.
func infiniaSeller(l *ledger.Ledger) func(pipeline.Effect) (string, error) {
	var mu sync.Mutex
	cache := map[int64]map[string]pipeline.Seller{}
	return func(e pipeline.Effect) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		sellers, ok := cache[e.RunID]
		if !ok {
			var err error
			if sellers, err = l.RunSellers(context.Background(), e.RunID); err != nil {
				return "", err
			}
			cache[e.RunID] = sellers
		}
		id, err := infiniapay.SubjectSeller(e.Subject, e.Currency)
		if err != nil {
			return "", err
		}
		s, ok := sellers[id]
		if !ok || s.Account(infiniapay.SellerAccount) == "" {
			return "", fmt.Errorf("seller %s of %s has no Infinia seller id", id, e.Subject)
		}
		return s.Account(infiniapay.SellerAccount), nil
	}
}

// infiniaAPI adapts the Infinia client to what the pipeline consumes.
type infiniaAPI struct{ c *infiniapay.Client }

// notFound classifies the client's errors for the pipeline: a requestNo or
// seller Infinia does not know is pipeline.ErrNotFound; a definite refusal
// of one request (a code that is not transient) or an error file in
// another layout is pipeline.ErrRefused, which the stages record against
// the request's subject; refused credentials keep their kind (usage).
func notFound(err error) error {
	var ie *infiniapay.Error
	switch {
	case err == nil, pipeline.KindOf(err) == pipeline.KindUsage:
		return err
	case errors.Is(err, infiniapay.ErrNotFound):
		return fmt.Errorf("%w: %w", pipeline.ErrNotFound, err)
	case errors.Is(err, infiniapay.ErrLayout), errors.As(err, &ie) && ie.Definite():
		return fmt.Errorf("%w: %w", pipeline.ErrRefused, err)
	}
	return err
}

// classified is an EffectSender whose errors are classified by notFound.
type classified struct{ pipeline.EffectSender }

func (c classified) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	o, err := c.EffectSender.Send(ctx, e)
	return o, notFound(err)
}

func (c classified) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	o, err := c.EffectSender.Query(ctx, e)
	return o, notFound(err)
}

func (a infiniaAPI) UploadStatus(ctx context.Context, requestNo string) (string, string, error) {
	u, err := a.c.UploadStatus(ctx, requestNo)
	return u.Status, u.ErrorFileURL, notFound(err)
}

func (a infiniaAPI) ErrorRows(ctx context.Context, url string) ([]pipeline.ProviderReject, error) {
	rows, err := a.c.ErrorFile(ctx, url)
	out := make([]pipeline.ProviderReject, len(rows))
	for i, r := range rows {
		out[i] = pipeline.ProviderReject{OrderNo: r.OrderNo, Reason: r.Reason}
	}
	return out, notFound(err)
}

func (a infiniaAPI) BindingStatus(ctx context.Context, requestNo, infiniaID string) (string, error) {
	b, err := a.c.BindingStatus(ctx, requestNo, infiniaID)
	return b.Status, notFound(err)
}

func (a infiniaAPI) Balance(ctx context.Context, requestNo string, cur pipeline.Currency) (int64, error) {
	b, err := a.c.Balance(ctx, requestNo, cur)
	return b.Available, notFound(err)
}

func (a infiniaAPI) RevenueShareStatus(ctx context.Context, requestNo string) (pipeline.InfiniaShare, error) {
	r, err := a.c.RevenueShareStatus(ctx, requestNo)
	return pipeline.InfiniaShare{Status: r.Status, Currency: r.Currency, Amount: r.Amount, FailReason: r.FailReason}, notFound(err)
}

func (a infiniaAPI) AvailableShare(ctx context.Context, requestNo, infiniaID string, cur pipeline.Currency) (int64, error) {
	v, err := a.c.AvailableShare(ctx, requestNo, infiniaID, cur)
	return v, notFound(err)
}
