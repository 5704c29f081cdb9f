package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/time/rate"

	"github.com/settlekit/settle/load/wechatpay"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// Flags of the WeChat Pay Global connection.
const (
	flagWXURL        = "wechat-url"
	flagWXMchID      = "wechat-mchid"
	flagWXSerial     = "wechat-serial"
	flagWXKey        = "wechat-private-key-file"
	flagWXPlatKey    = "wechat-platform-key-file"
	flagWXPlatSerial = "wechat-platform-serial"
	flagWXReceiver   = "wechat-receiver-account"
	flagWXRecvName   = "wechat-receiver-name"
	flagWXRelation   = "wechat-receiver-relation"
	flagWXRatio      = "wechat-max-ratio-bps"
	flagWXQPS        = "wechat-qps"
	flagWXSubQPS     = "wechat-sub-merchant-qps"
)

func weChatFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagWXURL, EnvVars: []string{"SETTLE_WECHAT_URL"},
			Usage: "WeChat Pay Global API host, e.g. https://apihk.mch.weixin.qq.com (empty: WeChat orders are not settled)"},
		&cli.StringFlag{Name: flagWXMchID, EnvVars: []string{"SETTLE_WECHAT_MCHID"}, Usage: "our merchant (service provider) id"},
		&cli.StringFlag{Name: flagWXSerial, EnvVars: []string{"SETTLE_WECHAT_SERIAL"}, Usage: "serial number of our merchant API certificate"},
		&cli.StringFlag{Name: flagWXKey, EnvVars: []string{"SETTLE_WECHAT_PRIVATE_KEY_FILE"}, Usage: "our merchant API private key (PEM)"},
		&cli.StringFlag{Name: flagWXPlatKey, EnvVars: []string{"SETTLE_WECHAT_PLATFORM_KEY_FILE"}, Usage: "WeChat Pay's platform certificate or public key (PEM)"},
		&cli.StringFlag{Name: flagWXPlatSerial, EnvVars: []string{"SETTLE_WECHAT_PLATFORM_SERIAL"}, Usage: "its serial (Wechatpay-Serial); read from a certificate when empty"},
		&cli.StringFlag{Name: flagWXReceiver, EnvVars: []string{"SETTLE_WECHAT_RECEIVER_ACCOUNT"}, Usage: "the platform's receiver: its merchant id"},
		&cli.StringFlag{Name: flagWXRecvName, EnvVars: []string{"SETTLE_WECHAT_RECEIVER_NAME"}, Usage: "the platform receiver's full merchant name (sent encrypted)"},
		&cli.StringFlag{Name: flagWXRelation, EnvVars: []string{"SETTLE_WECHAT_RECEIVER_RELATION"}, Value: wechatpay.RelationDistributor,
			Usage: "relation_type of the platform's receiver"},
		&cli.Int64Flag{Name: flagWXRatio, EnvVars: []string{"SETTLE_WECHAT_MAX_RATIO_BPS"}, Value: 3000,
			Usage: "WeChat's cap on what a transaction may send out, in basis points of its amount (assumed 30%); a commission above it is held"},
		&cli.Float64Flag{Name: flagWXQPS, EnvVars: []string{"SETTLE_WECHAT_QPS"}, Value: 300, Usage: "requests per second to WeChat Pay (service provider)"},
		&cli.Float64Flag{Name: flagWXSubQPS, EnvVars: []string{"SETTLE_WECHAT_SUB_MERCHANT_QPS"}, Value: 30, Usage: "requests per second per sub-merchant"},
	}
}

// weChatSetup is the WeChat connection as configured.
type weChatSetup struct {
	client   *wechatpay.Client
	receiver wechatpay.NewReceiver // SubMchID filled per call
	ratio    int64

	mu        sync.Mutex
	subs      map[string]*sync.Mutex // one receiver check at a time per sub-merchant
	effective map[string]bool        // sub-merchants whose receiver is EFFECTIVE
	refused   map[string]error       // sub-merchants where WeChat Pay refused the receiver, for the run

	qps, subQPS float64       // WeChat Pay's limits, this shard's part
	firstPoll   time.Duration // --provider-first-poll
}

func weChatFromFlags(c *cli.Context) (*weChatSetup, error) {
	if c.String(flagWXURL) == "" {
		return nil, nil
	}
	for _, f := range []string{flagWXMchID, flagWXSerial, flagWXKey, flagWXPlatKey, flagWXReceiver, flagWXRecvName} {
		if c.String(f) == "" {
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+f, "required with --%s", flagWXURL)
		}
	}
	key, err := wechatpay.LoadPrivateKey(c.String(flagWXKey))
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--"+flagWXKey, err)
	}
	serial, pub, err := wechatpay.LoadPlatformKey(c.String(flagWXPlatKey), c.String(flagWXPlatSerial))
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--"+flagWXPlatKey, err)
	}
	cfg := wechatpay.Config{BaseURL: c.String(flagWXURL), MchID: c.String(flagWXMchID), SerialNo: c.String(flagWXSerial), PrivateKey: key,
		PlatformKeys: map[string]*rsa.PublicKey{serial: pub}, EncryptSerial: serial, HTTP: wechatpay.NewHTTPClient(30 * time.Second)}
	// The shards of a day share WeChat Pay's limits: each takes its part.
	n := float64(shardCount(c))
	w, err := newWeChat(cfg, c.Float64(flagWXQPS)/n, c.Float64(flagWXSubQPS)/n, c.String(flagWXReceiver), c.String(flagWXRecvName), c.String(flagWXRelation), c.Int64(flagWXRatio))
	if w != nil {
		w.firstPoll = c.Duration(flagFirstPoll)
	}
	return w, err
}

func newWeChat(cfg wechatpay.Config, qps, subQPS float64, account, name, relation string, ratio int64) (*weChatSetup, error) {
	// Bursts of 1: requests are spaced evenly, so that a provider whose own
	// bucket started at another moment never sees more than the rate.
	if qps > 0 {
		cfg.Limiter = rate.NewLimiter(rate.Limit(qps), 1)
	}
	if subQPS > 0 {
		cfg.SubMerchantLimit, cfg.SubMerchantBurst = rate.Limit(subQPS), 1
	}
	client, err := wechatpay.New(cfg)
	if err != nil {
		return nil, pipeline.E(pipeline.KindUsage, "--"+flagWXURL, err)
	}
	r := wechatpay.NewReceiver{Type: wechatpay.TypeMerchantID, Account: account, Name: name, RelationType: relation}
	if relation == wechatpay.RelationCustom {
		r.CustomRelation = "marketplace platform"
	}
	return &weChatSetup{client: client, receiver: r, ratio: ratio, subs: map[string]*sync.Mutex{}, effective: map[string]bool{},
		refused: map[string]error{}, qps: qps, subQPS: subQPS}, nil
}

// provider returns WeChat Pay as a provider of the run over the ledger:
// its distribute chain, where the effect engine keeps to WeChat Pay's
// limits (--wechat-qps for the service provider, --wechat-sub-merchant-qps
// per sub-merchant: its lanes), with parallel (deprecated --parallel) as a
// cap on requests in flight; and its matcher (now tells whether a day is
// over in Beijing).
func (w *weChatSetup) provider(l *ledger.Ledger, parallel int, wait, poll time.Duration, now func() time.Time) pipeline.Provider {
	return pipeline.Provider{Name: "wechatpay", Settles: []pipeline.Channel{wechatpay.Channel},
		Preflight: w.preflight,
		Distribute: pipeline.DistributeWeChatStage(pipeline.WeChatConfig{Store: l, API: weChatAPI{w}, MaxRatioBps: w.ratio,
			Pacer: pacer(w.qps, w.subQPS, parallel), Wait: wait, FirstPoll: w.firstPoll, Poll: poll}),
		Matchers: []pipeline.Matcher{w.matcher(l, now)},
	}
}

// pacer returns the effect engine's pacer for a provider allowing qps
// requests a second (0: unlimited) and subQPS per lane (0: none), at most
// maxInFlight in flight (0: pipeline.DefaultMaxInFlight). Bursts of 1, as
// the clients' own buckets.
func pacer(qps, subQPS float64, maxInFlight int) *pipeline.Pacer {
	l := pipeline.Limits{Rate: qps, MaxInFlight: maxInFlight}
	if qps > 0 {
		l.Limit = rate.NewLimiter(rate.Limit(qps), 1)
	}
	if subQPS > 0 {
		l.Lane = func(string) pipeline.Limiter { return rate.NewLimiter(rate.Limit(subQPS), 1) }
	}
	return pipeline.NewPacer(l)
}

// weChatAPI adapts the WeChat client to what the pipeline consumes.
type weChatAPI struct{ w *weChatSetup }

// EnsureReceiver checks (and adds when missing) the platform's receiver at
// a sub-merchant, one check at a time per sub-merchant, remembering those
// found EFFECTIVE for the rest of the run, and those where WeChat Pay
// refused the receiver (asked once a run). An add whose answer was lost is
// resolved by the receiver result query (wechatpay.Client.EnsureReceiver),
// never left to fail the run.
func (a weChatAPI) EnsureReceiver(ctx context.Context, subMchID string) (string, error) {
	w := a.w
	w.mu.Lock()
	if w.effective[subMchID] {
		w.mu.Unlock()
		return pipeline.ReceiverEffective, nil
	}
	if err := w.refused[subMchID]; err != nil {
		w.mu.Unlock()
		return "", err // asked once a run: the other transactions are held with the same answer
	}
	lock := w.subs[subMchID]
	if lock == nil {
		lock = &sync.Mutex{}
		w.subs[subMchID] = lock
	}
	w.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	w.mu.Lock()
	known, refused := w.effective[subMchID], w.refused[subMchID] // decided while we waited
	w.mu.Unlock()
	switch {
	case known:
		return pipeline.ReceiverEffective, nil
	case refused != nil:
		return "", refused
	}
	r := w.receiver
	r.SubMchID = subMchID
	st, err := w.client.EnsureReceiver(ctx, r) // a lost add is resolved by the result query, here
	var we *wechatpay.Error
	if errors.As(err, &we) && we.Refused() {
		w.mu.Lock()
		w.refused[subMchID] = err
		w.mu.Unlock()
	}
	if err != nil {
		return "", err
	}
	if st.State == pipeline.ReceiverEffective {
		w.mu.Lock()
		w.effective[subMchID] = true
		w.mu.Unlock()
	}
	return st.State, nil
}

func (a weChatAPI) Remaining(ctx context.Context, subMchID, transactionID string) (int64, error) {
	u, err := a.w.client.RemainingAmount(ctx, subMchID, transactionID)
	var we *wechatpay.Error
	if errors.As(err, &we) && we.Code == wechatpay.CodeOrderNotReady {
		return 0, fmt.Errorf("%w: %v", pipeline.ErrNotReady, err)
	}
	if errors.Is(err, wechatpay.ErrNotFound) {
		return 0, fmt.Errorf("%w: %v", pipeline.ErrNotFound, err)
	}
	return u.Amount, err
}

func (a weChatAPI) sender(o pipeline.WeChatOrder) wechatpay.DistributionSender {
	return wechatpay.DistributionSender{Client: a.w.client, Distribution: func(e pipeline.Effect) (wechatpay.Distribution, error) {
		d := wechatpay.Distribution{SubMchID: o.SubMchID, TransactionID: o.TransactionID, UnfreezeUnsplit: true}
		if o.Commission > 0 {
			d.Receivers = []wechatpay.Share{{Type: a.w.receiver.Type, Account: a.w.receiver.Account, Currency: o.Currency,
				Amount: o.Commission, Description: "platform commission"}}
		}
		return d, nil
	}}
}

func (a weChatAPI) Send(ctx context.Context, e pipeline.Effect, o pipeline.WeChatOrder) (pipeline.Outcome, error) {
	return a.sender(o).Send(ctx, e)
}

func (a weChatAPI) Query(ctx context.Context, e pipeline.Effect, o pipeline.WeChatOrder) (pipeline.Outcome, error) {
	return a.sender(o).Query(ctx, e)
}

// preflight proves the WeChat Pay credentials before anything is sent: a
// cheap authenticated query (wechatpay.Client.Preflight). Refused
// credentials, or answers our platform key cannot verify, are a
// configuration error (exit 2) in one line naming WeChat Pay; a WeChat Pay
// that does not answer is returned as it is.
func (w *weChatSetup) preflight(ctx context.Context) error {
	return w.client.Preflight(ctx)
}
