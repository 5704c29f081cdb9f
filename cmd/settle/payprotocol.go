package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/time/rate"

	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
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
			Usage: "decimals of each crypto currency on each Pay Protocol chain, <chainId>:<SYMBOL>=<decimals>, comma-separated, e.g. 1:USDT=6,3:USDT=18 (Pay Protocol's answers carry none; a refund amount in a currency not listed is reported, never guessed)"},
	}
}

// payProtocolFromFlags returns the verifier, or nil when not configured.
func payProtocolFromFlags(c *cli.Context, ratePerSecond float64) (pipeline.PayProtocol, error) {
	base := c.String(flagPPURL)
	if base == "" {
		return nil, nil
	}
	if c.String(flagPPKey) == "" || c.String(flagPPSecret) == "" {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagPPURL, "needs --%s and --%s", flagPPKey, flagPPSecret)
	}
	return newPayProtocol(base, c.String(flagPPKey), c.String(flagPPSecret), c.String(flagPPDecimals), ratePerSecond)
}

// newPayProtocol returns the Pay Protocol adapter; decimals is the
// --payprotocol-decimals value.
func newPayProtocol(base, key, secretFile, decimals string, ratePerSecond float64) (pipeline.PayProtocol, error) {
	b, err := os.ReadFile(secretFile)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--"+flagPPSecret, err)
	}
	dec, err := payprotocol.ParseDecimals(decimals)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--"+flagPPDecimals, err)
	}
	var limiter *rate.Limiter
	if ratePerSecond > 0 {
		limiter = rate.NewLimiter(rate.Limit(ratePerSecond), max(1, int(ratePerSecond)))
	}
	client, err := payprotocol.New(payprotocol.Config{BaseURL: base, APIKey: key, APISecret: strings.TrimSpace(string(b)),
		HTTP: payprotocol.NewHTTPClient(30 * time.Second), Limiter: limiter, Decimals: dec})
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--"+flagPPURL, err)
	}
	return payProtocolAPI{client}, nil
}

// payProtocolAPI adapts the Pay Protocol client to what the verification
// consumes.
type payProtocolAPI struct{ c *payprotocol.Client }

// preflight makes one cheap authenticated call to Pay Protocol before
// anything is sent: refused credentials are a pipeline.KindUsage error
// (exit 2) naming Pay Protocol and what it refused.
func (a payProtocolAPI) preflight(ctx context.Context) error {
	return a.c.Preflight(ctx)
}

// Payment reads the status first: a payment in progress needs nothing
// else. A paid one is checked as Pay Protocol's own plugin checks it, by
// its quote (quoteCurrencySymbol and quoteAmount, compared exactly as a
// number): no crypto amount, hence no decimals, is needed.
func (a payProtocolAPI) Payment(ctx context.Context, outTradeNo string) (string, pipeline.Money, error) {
	p, err := a.c.PaymentDetail(ctx, outTradeNo, "")
	if errors.Is(err, payprotocol.ErrNotFound) {
		return "", pipeline.Money{}, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	if err != nil {
		return "", pipeline.Money{}, err
	}
	if p.Status != payprotocol.PaymentPaid {
		return p.Status.String(), pipeline.Money{}, nil
	}
	quote, err := p.Quote()
	if err != nil {
		// Paid, but not in an amount we can compare exactly: not verified.
		return "paid in an amount that cannot be checked (" + err.Error() + ")", pipeline.Money{}, nil
	}
	return p.Status.String(), quote, nil
}

func (a payProtocolAPI) LatestRefund(ctx context.Context, outTradeNo string) (string, error) {
	r, err := a.c.RefundDetail(ctx, outTradeNo, "")
	if errors.Is(err, payprotocol.ErrNotFound) {
		return pipeline.RefundNone, nil
	}
	if err != nil {
		return "", err
	}
	return r.Status.String(), nil
}
