package main

import (
	"crypto/rsa"
	"slices"
	"strings"
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
	flagWXPlatVerify = "wechat-platform-verify-file"
	flagWXReceiver   = "wechat-receiver-account"
	flagWXRecvName   = "wechat-receiver-name"
	flagWXRelation   = "wechat-receiver-relation"
	flagWXRatio      = "wechat-max-ratio-bps"
	flagWXFee        = "wechat-max-fee-bps"
	flagWXQPS        = "wechat-qps"
	flagWXSubQPS     = "wechat-sub-merchant-qps"
	flagWXBillLayout = "wechat-bill-layout"
	flagWXMemory     = "wechat-query-memory"
	flagWXCurrencies = "wechat-currencies"
	flagWXSubMchID   = "wechat-sub-mchid" // settle resolve --order's: the transaction's own sub-merchant
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
		&cli.StringSliceFlag{Name: flagWXPlatVerify, EnvVars: []string{"SETTLE_WECHAT_PLATFORM_VERIFY_FILES"},
			Usage: "another WeChat Pay platform key, for checking answers only, while WeChat Pay rotates its platform certificate or public key (it signs with the old or the new one): a certificate file (its serial read from it) or PUB_KEY_ID_...=FILE for a public key (repeat or comma-separate); requests name the key of --" + flagWXPlatKey},
		&cli.StringFlag{Name: flagWXReceiver, EnvVars: []string{"SETTLE_WECHAT_RECEIVER_ACCOUNT"}, Usage: "the platform's receiver: its merchant id"},
		&cli.StringFlag{Name: flagWXRecvName, EnvVars: []string{"SETTLE_WECHAT_RECEIVER_NAME"}, Usage: "the platform receiver's full merchant name (sent encrypted)"},
		&cli.StringFlag{Name: flagWXRelation, EnvVars: []string{"SETTLE_WECHAT_RECEIVER_RELATION"}, Value: wechatpay.RelationDistributor,
			Usage: "relation_type of the platform's receiver"},
		&cli.Int64Flag{Name: flagWXRatio, EnvVars: []string{"SETTLE_WECHAT_MAX_RATIO_BPS"}, Value: 3000,
			Usage: "WeChat's cap on what a transaction may send out, in basis points of its amount (assumed 30%); a commission above it is held"},
		&cli.Int64Flag{Name: flagWXFee, EnvVars: []string{"SETTLE_WECHAT_MAX_FEE_BPS"},
			Usage: "the most WeChat Pay's fee takes of a transaction, in basis points of its amount (your contract's rate; 0: none): WeChat Pay holds the order's amount less its fee to distribute; holding less than the order less this much is held for a person"},
		&cli.Float64Flag{Name: flagWXQPS, EnvVars: []string{"SETTLE_WECHAT_QPS"}, Value: 300, Usage: "requests per second to WeChat Pay (service provider; with --shard I/N each shard takes 1/N; 0: no limit)"},
		&cli.Float64Flag{Name: flagWXSubQPS, EnvVars: []string{"SETTLE_WECHAT_SUB_MERCHANT_QPS"}, Value: 30, Usage: "requests per second per sub-merchant (with --shard I/N each shard takes 1/N; 0: no limit)"},
		&cli.StringFlag{Name: flagWXCurrencies, EnvVars: []string{"SETTLE_WECHAT_CURRENCIES"}, Value: string(wechatpay.DistributionCurrency),
			Usage: "the currencies WeChat Pay distributes, comma-separated ISO 4217 codes (CNY only, as published); an order in another is held for a person, nothing sent"},
		&cli.DurationFlag{Name: flagWXMemory, EnvVars: []string{"SETTLE_WECHAT_QUERY_MEMORY"}, Value: wechatpay.DefaultMemory,
			Usage: "how long WeChat Pay's order query is taken to remember an out_order_no (none published; above 24h): a distribution or unfreeze planned longer ago that it does not know is neither sent again nor failed but its transaction held for a person (exit 4)"},
		&cli.StringFlag{Name: flagWXBillLayout, EnvVars: []string{"SETTLE_WECHAT_BILL_LAYOUT"},
			Usage: "JSON file of the distribution bill's column names, business types and summary row, wechatpay.BillLayout's fields (empty: the published header and our assumptions)"},
	}
}

// weChatSetup is the WeChat connection as configured.
type weChatSetup struct {
	client   *wechatpay.Client
	receiver wechatpay.NewReceiver // SubMchID filled per call
	// account names our service provider account, as the settings give
	// it (pipeline.RunParams.Accounts); the sub-merchant is the seller's,
	// as the run read it.
	account string
	ratio   int64
	fee     int64 // --wechat-max-fee-bps
	// currencies are those WeChat Pay distributes (--wechat-currencies).
	currencies []pipeline.Currency

	qps, subQPS float64       // WeChat Pay's limits, this shard's part
	firstPoll   time.Duration // --provider-first-poll
	billLayout  wechatpay.BillLayout
	memory      time.Duration // --wechat-query-memory
}

func (cfg *config) weChatFromFlags(c *cli.Context) (*weChatSetup, error) {
	if r := c.Int64(flagWXRatio); r <= 0 || r > 10000 {
		// 0 or less was put back to 3000 by the stage, silently; above
		// 10000 is no cap.
		return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagWXRatio, "want basis points from 1 to 10000 (3000: 30%%), got %d", r)
	}
	if m := c.Duration(flagWXMemory); m <= wechatpay.DefaultKnownAfter {
		// A refused repeat is failed once WeChat Pay has not known it for
		// DefaultKnownAfter, which it must still remember by then.
		return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagWXMemory, "want a duration above %s, got %s", wechatpay.DefaultKnownAfter, m)
	}
	if f := c.Int64(flagWXFee); f < 0 || f >= 10000 {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagWXFee, "want basis points from 0 to 9999 (100: 1%%), got %d", f)
	}
	currencies, err := parseWeChatCurrencies(c.String(flagWXCurrencies))
	if err != nil {
		return nil, err
	}
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
		return nil, pipeline.FileError("--"+flagWXKey, err)
	}
	platform, serial, err := weChatPlatformKeys(c.String(flagWXPlatKey), c.String(flagWXPlatSerial), c.StringSlice(flagWXPlatVerify))
	if err != nil {
		return nil, err
	}
	wcfg := wechatpay.Config{BaseURL: c.String(flagWXURL), MchID: c.String(flagWXMchID), SerialNo: c.String(flagWXSerial), PrivateKey: key,
		PlatformKeys: platform, EncryptSerial: serial, HTTP: wechatpay.NewHTTPClient(30 * time.Second)}
	// The shards of a day share WeChat Pay's limits: each takes its part.
	n := float64(cfg.shardCount(c))
	qps, err := rateFlag(c, flagWXQPS)
	if err != nil {
		return nil, err
	}
	subQPS, err := rateFlag(c, flagWXSubQPS)
	if err != nil {
		return nil, err
	}
	w, err := newWeChat(wcfg, qps/n, subQPS/n, c.String(flagWXReceiver), c.String(flagWXRecvName), c.String(flagWXRelation), c.Int64(flagWXRatio))
	if err != nil {
		return nil, err
	}
	w.firstPoll = c.Duration(flagFirstPoll)
	w.fee = c.Int64(flagWXFee)
	w.currencies = currencies
	w.memory = c.Duration(flagWXMemory)
	if f := c.String(flagWXBillLayout); f != "" {
		if w.billLayout, err = wechatpay.LoadBillLayout(f); err != nil {
			return nil, pipeline.FileError("--"+flagWXBillLayout, err)
		}
	}
	return w, nil
}

// weChatPlatformKeys reads WeChat Pay's platform keys by serial: that of
// --wechat-platform-key-file (file, its id serial when a public key), whose
// serial requests name (returned), and each --wechat-platform-verify-file,
// for checking answers only. WeChat Pay, rotating its platform certificate
// or public key, signs answers with the old or the new one meanwhile and
// asks merchants to accept both: a run holding one alone stopped at the
// first answer signed with the other. A verify file is a certificate, its
// serial read from it, or SERIAL=FILE (PUB_KEY_ID_...=FILE for a public
// key; a certificate's SERIAL must be its own). A serial given twice, a
// certificate under another serial (fileSerial, --wechat-platform-serial,
// included: a certificate's is its own), or a file that is no key are
// usage errors (exit 2) naming the flag.
func weChatPlatformKeys(file, fileSerial string, verify []string) (map[string]*rsa.PublicKey, string, error) {
	serial, pub, err := wechatpay.LoadPlatformKey(file, fileSerial)
	if err != nil {
		return nil, "", pipeline.FileError("--"+flagWXPlatKey, err)
	}
	if fileSerial != "" && serial != fileSerial {
		// A certificate, whose serial is its own: the flag names another
		// (the serial of one certificate pasted beside another's file).
		// It was ignored, and requests named the file's certificate
		// while the operator took them to name the flag's. A public
		// key's id is the flag's alone: nothing in the file to compare
		// it with (a wrong pairing shows in WeChat Pay's first answer,
		// the preflight's, signed with the key the request names: it does
		// not verify with the file's key, exit 2).
		return nil, "", pipeline.Errorf(pipeline.KindUsage, "--"+flagWXPlatSerial,
			"%s, given as --%s, is WeChat Pay's certificate of serial %s, not %s: give the certificate's own serial, or the file of %s (or leave --%s empty: a certificate's serial is read from it)",
			file, flagWXPlatKey, serial, fileSerial, fileSerial, flagWXPlatSerial)
	}
	keys := map[string]*rsa.PublicKey{serial: pub}
	for _, v := range verify {
		v = strings.TrimSpace(v)
		if v == "" {
			continue // SETTLE_WECHAT_PLATFORM_VERIFY_FILES set empty, or a trailing comma
		}
		id, path := "", v
		if before, after, ok := strings.Cut(v, "="); ok && serialWord(before) {
			id, path = before, after
		}
		got, k, err := wechatpay.LoadPlatformKey(path, id)
		switch {
		case err != nil:
			return nil, "", pipeline.FileError("--"+flagWXPlatVerify, err)
		case id != "" && got != id:
			return nil, "", pipeline.Errorf(pipeline.KindUsage, "--"+flagWXPlatVerify, "%s is WeChat Pay's certificate of serial %s, given as %s (give the file alone: its serial is read from it)", path, got, id)
		case keys[got] != nil:
			return nil, "", pipeline.Errorf(pipeline.KindUsage, "--"+flagWXPlatVerify, "platform key %s given twice (%s): each serial once, the current one by --%s", got, path, flagWXPlatKey)
		}
		keys[got] = k
	}
	return keys, serial, nil
}

// serialWord reports whether s can be a platform key's serial, as in
// PUB_KEY_ID_...=FILE: a word of [0-9A-Za-z_], which no path with a
// directory or a file extension is.
func serialWord(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
	})
}

// customRelation is the custom_relation of the platform's receiver when
// its relation type is CUSTOM.
const customRelation = "platform"

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
		// At most wechatpay.MaxCustomRelation characters: "marketplace
		// platform" was refused at every sub-merchant, every run.
		r.CustomRelation = customRelation
	}
	// The receiver is added at every sub-merchant: one WeChat Pay refuses
	// (a relation type it does not publish) held every order with a
	// commission, every run. Said now, once (exit 2).
	if err := r.Check(); err != nil {
		return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagWXRelation, "the platform's receiver: %w", err)
	}
	return &weChatSetup{client: client, receiver: r, account: "--" + flagWXMchID + " " + cfg.MchID, ratio: ratio, currencies: []pipeline.Currency{wechatpay.DistributionCurrency}, qps: qps, subQPS: subQPS}, nil
}

// provider returns WeChat Pay as a provider of the run over the ledger
// (wechatpay.NewProvider): the effect engine and the matcher's queries
// keep to WeChat Pay's limits (--wechat-qps for the service
// provider, --wechat-sub-merchant-qps per sub-merchant: its lanes), with
// parallel (deprecated --parallel) as a cap on requests in flight; now
// tells whether a Beijing day's bill is out (wechatpay.BillOut) and whether
// the date is past --wechat-query-memory; sendPastMemory
// (--send-past-memory) sends its new requests all the same.
func (w *weChatSetup) provider(l *ledger.Ledger, final pipeline.FinalAnswers, parallel int, wait, poll time.Duration, now func() time.Time, sendPastMemory bool) pipeline.Provider {
	c := wechatpay.ProviderConfig{Client: w.client, Receiver: w.receiver, MaxRatioBps: w.ratio, MaxFeeBps: w.fee, Currencies: w.currencies,
		Pacer: pacer(w.qps, w.subQPS, parallel), Wait: wait, FirstPoll: w.firstPoll, Poll: poll, Store: l, Now: now,
		Final: final, BillLayout: w.billLayout, Memory: w.memory, SendPastMemory: sendPastMemory}
	return wechatpay.NewProvider(c)
}

// parseWeChatCurrencies reads --wechat-currencies: one or more known ISO
// 4217 codes, upper case, comma-separated, each once. A code settle does
// not know, or none at all, is a usage error (exit 2): a typo would hold
// every WeChat order, or let through one WeChat Pay refuses.
func parseWeChatCurrencies(s string) ([]pipeline.Currency, error) {
	var out []pipeline.Currency
	for part := range strings.SplitSeq(s, ",") {
		cur := pipeline.Currency(strings.TrimSpace(part))
		switch {
		case !cur.Valid():
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagWXCurrencies, "%q: want ISO 4217 codes settle knows, upper case, comma-separated (WeChat Pay distributes in CNY)", part)
		case slices.Contains(out, cur):
			return nil, pipeline.Errorf(pipeline.KindUsage, "--"+flagWXCurrencies, "%s given twice", cur)
		}
		out = append(out, cur)
	}
	return out, nil
}

// distributes reports whether WeChat Pay, as configured, distributes cur
// (the stage holds an order in another).
func (w *weChatSetup) distributes(cur pipeline.Currency) bool {
	return slices.Contains(w.currencies, cur)
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
		l.LaneRate = subQPS
	}
	return pipeline.NewPacer(l)
}
