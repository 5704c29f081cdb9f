package main

import (
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/time/rate"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// Flags of the Pay Protocol connection.
const (
	flagPPURL      = "payprotocol-url"
	flagPPKey      = "payprotocol-api-key"
	flagPPSecret   = "payprotocol-secret-file"
	flagPPDecimals = "payprotocol-decimals"
)

func payProtocolFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagPPURL, EnvVars: []string{"SETTLE_PAYPROTOCOL_URL"},
			Usage: "Pay Protocol merchant API base URL, e.g. https://api.payprotocol.network/api/mer (empty: Pay Protocol orders stay unverified and unpaid)"},
		&cli.StringFlag{Name: flagPPKey, EnvVars: []string{"SETTLE_PAYPROTOCOL_API_KEY"}, Usage: "Pay Protocol API key (X-PAY-KEY)"},
		&cli.StringFlag{Name: flagPPSecret, EnvVars: []string{"SETTLE_PAYPROTOCOL_SECRET_FILE"}, Usage: "file holding the Pay Protocol API secret"},
		&cli.StringFlag{Name: flagPPDecimals, EnvVars: []string{"SETTLE_PAYPROTOCOL_DECIMALS"},
			Usage: "decimals of crypto currencies on Pay Protocol chains, <chainId>:<SYMBOL>=<decimals>, comma-separated, e.g. 1:USDT=6,3:USDT=18; optional: Pay Protocol's currency list gives them, and a refund is read with the list's (those given here must agree with it, or the refund's order is held for this setting to be corrected)"},
	}
}

// payProtocolSetup is the Pay Protocol connection as configured (none
// without --payprotocol-url: Pay Protocol's orders then stay unverified and
// are not paid).
type payProtocolSetup struct {
	client   *payprotocol.Client
	rate     float64 // requests per second to Pay Protocol, this shard's part
	parallel int
}

// payProtocolFromFlags returns the Pay Protocol connection, or nil when not
// configured. It takes this shard's part of --provider-rate (as Infinia
// does); its orders are paid through Infinia, which infiniaFromFlags
// requires.
func (cfg *config) payProtocolFromFlags(c *cli.Context) (*payProtocolSetup, error) {
	base := c.String(flagPPURL)
	if base == "" {
		return nil, nil
	}
	if c.String(flagPPKey) == "" || c.String(flagPPSecret) == "" {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagPPURL, "needs --%s and --%s", flagPPKey, flagPPSecret)
	}
	rate, err := rateFlag(c, flagProviderRate)
	if err != nil {
		return nil, err
	}
	pp, err := newPayProtocol(base, c.String(flagPPKey), c.String(flagPPSecret), c.String(flagPPDecimals), rate/float64(cfg.shardCount(c)))
	if err != nil {
		return nil, err
	}
	pp.parallel = c.Int(flagParallel)
	return pp, nil
}

// newPayProtocol returns the Pay Protocol connection; decimals is the
// --payprotocol-decimals value.
func newPayProtocol(base, key, secretFile, decimals string, ratePerSecond float64) (*payProtocolSetup, error) {
	b, err := os.ReadFile(secretFile)
	if err != nil {
		return nil, pipeline.FileError("--"+flagPPSecret, err)
	}
	dec, err := payprotocol.ParseDecimals(decimals)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--"+flagPPDecimals, err)
	}
	var limiter *rate.Limiter
	if ratePerSecond > 0 {
		// Bursts of 1, as the pacer: a provider whose own bucket started
		// at another moment never sees more than the rate.
		limiter = rate.NewLimiter(rate.Limit(ratePerSecond), 1)
	}
	client, err := payprotocol.New(payprotocol.Config{BaseURL: base, APIKey: key, APISecret: strings.TrimSpace(string(b)),
		HTTP: payprotocol.NewHTTPClient(30 * time.Second), Limiter: limiter, Decimals: dec})
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--"+flagPPURL, err)
	}
	return &payProtocolSetup{client: client, rate: ratePerSecond}, nil
}

// provider returns Pay Protocol as a provider of the run over the ledger:
// it verifies the payments of its orders before Infinia files them, and
// reconciles them, with the orders rejected for a failed payment (by a
// person, or by an older settle), of which one paid since is logged on
// log; and, with watchDays above 0 (--rejected-watch-days, on a nightly
// run), those of the watchDays before the run's date whose runs it does
// not reconcile. All keep to --provider-rate (this shard's part) and, when
// set, --parallel in flight, on one pacer.
func (s *payProtocolSetup) provider(l *ledger.Ledger, final pipeline.FinalAnswers, log *slog.Logger, watchDays int) pipeline.Provider {
	return payprotocol.NewProvider(payprotocol.ProviderConfig{Client: s.client, Store: l, Final: final, Pacer: pacer(s.rate, 0, s.parallel),
		Rejected: l, Log: log, Watch: l, WatchDays: watchDays})
}
