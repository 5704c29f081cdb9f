package main

import (
	"crypto/rsa"
	"fmt"
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
	flagInfiniaSigned  = "infinia-require-signature"
	flagLostAfter      = "infinia-lost-after"
	flagInfiniaStatus  = "infinia-statuses"
	flagInfiniaMemory  = "infinia-query-memory"
	flagInfiniaProbe   = "infinia-preflight-currency"
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
		&cli.DurationFlag{Name: flagLostAfter, EnvVars: []string{"SETTLE_INFINIA_LOST_AFTER"}, Value: infiniapay.DefaultLostAfter,
			Usage: "how long after its upload a trade file Infinia says it does not know is waited on as not picked up yet; past it, the file is taken as lost and held for a person (exit 4), never uploaded again"},
		&cli.DurationFlag{Name: flagInfiniaMemory, EnvVars: []string{"SETTLE_INFINIA_QUERY_MEMORY"}, Value: infiniapay.DefaultMemory,
			Usage: "how long Infinia's revenue-sharing status query is taken to remember a requestNo (Infinia publishes none; above --infinia-lost-after): a revenue share planned longer ago that it does not know is neither sent again nor failed but held for a person (exit 4)"},
		&cli.DurationFlag{Name: flagFirstPoll, EnvVars: []string{"SETTLE_PROVIDER_FIRST_POLL"},
			Usage: "how long after a request is sent it is first asked about: the provider's typical processing time (0: --provider-poll)"},
		&cli.Float64Flag{Name: flagProviderRate, EnvVars: []string{"SETTLE_PROVIDER_RATE"}, Value: 20,
			Usage: "requests per second to Infinia, and to Pay Protocol (token buckets; with --shard I/N each shard takes 1/N; 0: no limit)"},
		&cli.IntFlag{Name: flagParallel, EnvVars: []string{"SETTLE_PARALLEL"}, Value: 0,
			Usage: "deprecated: a cap on the requests in flight to each provider (0: sized by the provider's rate x its observed latency, at most 256)"},
		&cli.StringFlag{Name: flagInfiniaCur, EnvVars: []string{"SETTLE_INFINIA_CURRENCIES"}, Value: infiniapay.DefaultCurrencies().String(),
			Usage: "currency codes Infinia spells differently, PLATFORM=INFINIA,... (\"none\": none); the ledger and reports keep the platform's"},
		&cli.StringFlag{Name: flagInfiniaProbe, EnvVars: []string{"SETTLE_INFINIA_PREFLIGHT_CURRENCY"}, Value: "USD",
			Usage: "the platform's currency of the balance query that checks Infinia's credentials before anything is sent (one the account holds: a refusal of it stops the run, exit 2)"},
		&cli.StringFlag{Name: flagInfiniaStatus, EnvVars: []string{"SETTLE_INFINIA_STATUSES"},
			Usage: "status words Infinia writes for the ones settle assumed, INFINIA=OURS,... (e.g. SUCCEEDED=SUCCESS; ours: PENDING, ACTIVE, FROZEN, REJECTED, RECEIVED, PROCESSING, SUCCESS, FAILED)"},
		&cli.StringFlag{Name: flagInfiniaLayout, EnvVars: []string{"SETTLE_INFINIA_LAYOUT"},
			Usage: "JSON file with the trade-file columns and the error-file columns to match Infinia's templates (empty: our layout, see the README)"},
		&cli.BoolFlag{Name: flagInfiniaSigned, EnvVars: []string{"SETTLE_INFINIA_REQUIRE_SIGNATURE"},
			Usage: "refuse an answer of Infinia's that carries no signature (its published answers show none: set it once Infinia confirms it signs them)"},
	)
}

// shardCount is N of the run's shard (cfg.shard: --shard I/N, or
// SETTLE_SHARDS with JOB_COMPLETION_INDEX), 1 without or when they do
// not read (the run refuses them): the shards of a day run at the same
// time and share each provider's limits, so each takes 1/N of each.
func (cfg *config) shardCount(c *cli.Context) int {
	if sh, err := cfg.shard(c); err == nil && sh.Count > 0 {
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
	lostAfter  time.Duration
	memory     time.Duration // --infinia-query-memory
	rate       float64       // requests per second to Infinia, this shard's part
	parallel   int
	// account names the Infinia account the run's requests go to, as the
	// settings give it (pipeline.RunParams.Accounts).
	account string
}

// checkWaits refuses the waits of every provider that would not mean what
// was asked: a --provider-wait, --provider-poll or --infinia-lost-after of
// 0 or less was put back to its default (10m, 1s, 24h) by the stages, so
// "SETTLE_PROVIDER_WAIT=0" waited ten minutes, while settle resolve
// --trade-file took the lost-after as given, and a file uploaded a minute
// before could be given up as lost; a negative --provider-first-poll was
// taken as --provider-poll.
func checkWaits(c *cli.Context) error {
	for _, f := range []struct{ name, usual string }{{flagProviderWait, "10m"}, {flagProviderPoll, "1s"}, {flagLostAfter, "24h"}} {
		if d := c.Duration(f.name); d <= 0 {
			return pipeline.Errorf(pipeline.KindUsage, "--"+f.name, "want a duration above 0 (the default: %s), got %s", f.usual, d)
		}
	}
	if m, lost := c.Duration(flagInfiniaMemory), c.Duration(flagLostAfter); m <= lost {
		return pipeline.Errorf(pipeline.KindUsage, "--"+flagInfiniaMemory, "want a duration above --%s (%s), got %s: a refused repeat is failed only once Infinia has not known it that long, which it must still remember", flagLostAfter, lost, m)
	}
	if d := c.Duration(flagFirstPoll); d < 0 {
		return pipeline.Errorf(pipeline.KindUsage, "--"+flagFirstPoll, "want a duration of 0 or more (0: --%s), got %s", flagProviderPoll, d)
	}
	if n := c.Int(flagParallel); n < 0 {
		return pipeline.Errorf(pipeline.KindUsage, "--"+flagParallel, "want 0 or more (0: sized by rate x latency), got %d", n)
	}
	return nil
}

// infiniaParams are the Infinia connection's settings, from flags or from
// the simulator.
type infiniaParams struct {
	URL, AppID, PlatformID, KeyFile, PublicKeyFile   string
	SFTPAddr, SFTPUser, SFTPKey, KnownHosts, SFTPDir string
	WorkDir                                          string
	Currencies                                       string // "": infiniapay.DefaultCurrencies
	LayoutFile                                       string // "": infiniapay.DefaultLayout
	Statuses                                         string // "": none mapped
	PreflightCurrency                                string // "": USD
	Wait, Poll, FirstPoll, LostAfter, Memory         time.Duration
	Rate                                             float64 // this shard's part
	Parallel                                         int
	RequireSignature                                 bool // refuse Infinia's unsigned answers
}

func (cfg *config) infiniaFromFlags(c *cli.Context) (*infiniaSetup, error) {
	rate, err := rateFlag(c, flagProviderRate)
	if err != nil {
		return nil, err
	}
	if err := checkWaits(c); err != nil {
		return nil, err
	}
	p := infiniaParams{
		URL: c.String(flagInfiniaURL), AppID: c.String(flagInfiniaAppID), PlatformID: c.String(flagPlatformID),
		KeyFile: c.String(flagInfiniaKey), PublicKeyFile: c.String(flagInfiniaPub), SFTPAddr: c.String(flagSFTPAddr),
		SFTPUser: c.String(flagSFTPUser), SFTPKey: c.String(flagSFTPKey), KnownHosts: c.String(flagSFTPKnownHosts),
		SFTPDir: c.String(flagSFTPDir), WorkDir: c.String(flagWorkDir), Wait: c.Duration(flagProviderWait), Poll: c.Duration(flagProviderPoll),
		Rate: rate / float64(cfg.shardCount(c)), Parallel: c.Int(flagParallel), FirstPoll: c.Duration(flagFirstPoll),
		Currencies: c.String(flagInfiniaCur), LayoutFile: c.String(flagInfiniaLayout), LostAfter: c.Duration(flagLostAfter),
		Memory: c.Duration(flagInfiniaMemory), Statuses: c.String(flagInfiniaStatus), RequireSignature: c.Bool(flagInfiniaSigned),
		PreflightCurrency: c.String(flagInfiniaProbe),
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
	return newInfinia(p)
}

func newInfinia(p infiniaParams) (*infiniaSetup, error) {
	usage := func(flag string, err error) error { return pipeline.E(pipeline.KindUsage, "--"+flag, err) }
	// A key or layout file that cannot be read is configuration but for a
	// failure of its file system a retry may get past.
	file := func(flag string, err error) error { return pipeline.FileError("--"+flag, err) }
	ours, err := infiniapay.LoadPrivateKey(p.KeyFile)
	if err != nil {
		return nil, file(flagInfiniaKey, err)
	}
	theirs, err := infiniapay.LoadPublicKey(p.PublicKeyFile)
	if err != nil {
		return nil, file(flagInfiniaPub, err)
	}
	signer, err := load.LoadSigner(p.SFTPKey)
	if err != nil {
		return nil, file(flagSFTPKey, err)
	}
	var limiter *rate.Limiter
	if p.Rate > 0 {
		// Bursts of 1, as the pacer: a provider whose own bucket started
		// at another moment never sees more than the rate.
		limiter = rate.NewLimiter(rate.Limit(p.Rate), 1)
	}
	currencies := infiniapay.DefaultCurrencies()
	if p.Currencies != "" {
		if currencies, err = infiniapay.ParseCurrencies(p.Currencies); err != nil {
			return nil, usage(flagInfiniaCur, err)
		}
	}
	statuses, err := infiniapay.ParseStatuses(p.Statuses)
	if err != nil {
		return nil, usage(flagInfiniaStatus, err)
	}
	var probe pipeline.Currency // "": the client's default
	if p.PreflightCurrency != "" {
		if probe, err = pipeline.ParseCurrency(p.PreflightCurrency); err != nil {
			return nil, usage(flagInfiniaProbe, err)
		}
	}
	var layout infiniapay.Layout
	if p.LayoutFile != "" {
		if layout, err = infiniapay.LoadLayout(p.LayoutFile); err != nil {
			return nil, file(flagInfiniaLayout, err)
		}
	}
	client, err := infiniapay.New(infiniapay.Config{BaseURL: p.URL, AppID: p.AppID, PlatformID: p.PlatformID,
		OurKey: ours, InfiniaKey: theirs, HTTP: infiniapay.NewHTTPClient(30 * time.Second), Limiter: limiter,
		Currencies: currencies, Layout: layout, Statuses: statuses, RequireResponseSignature: p.RequireSignature, PreflightCurrency: probe})
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
		platformID: p.PlatformID, account: fmt.Sprintf("--%s %s, --%s %s", flagInfiniaAppID, p.AppID, flagPlatformID, p.PlatformID), workDir: p.WorkDir, wait: p.Wait, poll: p.Poll, firstPoll: p.FirstPoll, lostAfter: p.LostAfter, memory: p.Memory, rate: p.Rate, parallel: p.Parallel,
	}, nil
}

// provider returns Infinia Pay as a provider of the run over the ledger
// (infiniapay.NewProvider): its distribute chain first turns late refunds
// into clawbacks (split again with rules), which its revenue shares net.
// It files and pays the items of Pay Protocol too, once verified (by the
// Pay Protocol provider, listed before it). now is the run's clock, which
// tells whether the date is past --infinia-query-memory; sendPastMemory
// (--send-past-memory) sends its new requests all the same.
func (s *infiniaSetup) provider(l *ledger.Ledger, late pipeline.LateRefundSource, window func(pipeline.Date) pipeline.Window,
	rules *transform.Rules, minPayout map[pipeline.Currency]int64, final pipeline.FinalAnswers, now func() time.Time, sendPastMemory bool) pipeline.Provider {
	return infiniapay.NewProvider(infiniapay.ProviderConfig{
		Client: s.client, SFTP: s.sftp, Store: l, Final: final,
		Channels:   []pipeline.Channel{infiniapay.Channel, payprotocol.Channel},
		PlatformID: s.platformID, WorkDir: s.workDir, Rows: transform.TradeRows,
		// The effect engine keeps to --provider-rate (the client keeps to
		// it too, for every call); --parallel, when set, caps the requests
		// in flight and the SFTP uploads at once.
		Pacer: pacer(s.rate, 0, s.parallel), Parallel: s.parallel,
		Wait: s.wait, Poll: s.poll, FirstPoll: s.firstPoll, LostAfter: s.lostAfter, Memory: s.memory, MinPayout: minPayout,
		Now: now, SendPastMemory: sendPastMemory,
		Before: pipeline.ClawBackStage(l, late, window, resplit(l, rules), channelSpecs()),
	})
}
