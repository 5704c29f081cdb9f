// Package paysim runs the provider simulator: the stateful fakes of the
// payment providers (simulated, not the real services) behind real
// listeners on the loopback interface - Infinia Pay's HTTP API and its SFTP
// server, Pay Protocol's and WeChat Pay Global's APIs - and writes the keys
// and files the job needs to talk to them. It creates the providers' side of
// a seeded day (SeedDay), shows what it holds (GET /paysim/state), and
// takes Settings that put the providers in the situations of the job's
// runbook (Apply; POST /paysim/control while it runs, from loopback). The
// paysim command, settle demo and the end-to-end tests use it.
package paysim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/load/payprotocol/payprotocoltest"
	"github.com/settlekit/settle/load/sftptest"
	"github.com/settlekit/settle/load/wechatpay/wechatpaytest"
)

// Options configure the simulator.
type Options struct {
	Dir    string          // where keys, known_hosts and the SFTP root go (required)
	Faults *fault.Injector // shared by every fake; nil: none
	// Polls is how many status polls answer PROCESSING before a final
	// status (default 1; negative: none, the Timing's delays alone).
	Polls int
	// ReviewPolls is how many receiver queries answer INIT before a new
	// receiver is EFFECTIVE (default 0: effective when added).
	ReviewPolls int
	HTTPAddr    string // default 127.0.0.1:0
	SFTPAddr    string // default 127.0.0.1:0
	AppID       string // default "APP-DEMO"
	PlatformID  string // default "PLATDEMO"
	// Timing is the timing model; the zero Timing answers at once.
	Timing Timing
	// WeChatFeeBps is WeChat Pay's fee, in basis points of a transaction
	// (wechatpaytest.Options.FeeBps; default 0: none): WeChat Pay holds
	// a transaction's amount less it to distribute, as published, which
	// settle takes within --wechat-max-fee-bps.
	WeChatFeeBps int
	// InfiniaMemory and WeChatMemory, simulated, are how long the Infinia
	// fake remembers a revenue share's requestNo, and the WeChat fake a
	// distribution's or unfreeze's out_order_no
	// (infiniapaytest.Options.Memory, wechatpaytest.Options.Memory, on
	// the Timing's clock); 0: for ever.
	InfiniaMemory, WeChatMemory time.Duration
	// ShareKeys: a Dir without keys takes those of the process's first
	// simulator started with ShareKeys, rather than keys of its own
	// (tests: generating four RSA keys cost each simulator's start about
	// a CPU-second under -race). Simulators sharing keys share the SFTP
	// host key too.
	ShareKeys bool
	// KeyBits is the size of the RSA keys a Dir without keys is given
	// (Infinia's envelope, WeChat Pay's signatures); 0: 2048, the
	// providers'. Tests whose subject is not the keys take 1024: the
	// Infinia envelope costs a private-key operation per 64 bytes of every
	// request and answer, which at 2048 bits was over half the CPU of an
	// Infinia test of cmd/settle under -race, and a quarter of it at 1024.
	KeyBits int
}

// Config is what the job needs to reach the simulator: the values of its
// --infinia-*, --sftp-*, --payprotocol-* and --wechat-* flags.
type Config struct {
	InfiniaURL, AppID, PlatformID, OurKeyFile, InfiniaPublicKeyFile string
	SFTPAddr, SFTPUser, SFTPKeyFile, KnownHostsFile                 string
	PayProtocolURL, PayProtocolAPIKey, PayProtocolSecretFile        string
	WeChatURL, WeChatMchID, WeChatSerial, WeChatKeyFile             string
	WeChatPlatformKeyFile, WeChatPlatformSerial                     string
	WeChatReceiverAccount, WeChatReceiverName                       string
}

// Env renders c as the job's environment variables. A provider whose URL
// was blanked (to leave it unconfigured) is left out whole.
func (c Config) Env() []string {
	env := []string{
		"SETTLE_INFINIA_URL=" + c.InfiniaURL, "SETTLE_INFINIA_APP_ID=" + c.AppID, "SETTLE_PLATFORM_ID=" + c.PlatformID,
		"SETTLE_INFINIA_PRIVATE_KEY_FILE=" + c.OurKeyFile, "SETTLE_INFINIA_PUBLIC_KEY_FILE=" + c.InfiniaPublicKeyFile,
		"SETTLE_SFTP_ADDR=" + c.SFTPAddr, "SETTLE_SFTP_USER=" + c.SFTPUser, "SETTLE_SFTP_KEY_FILE=" + c.SFTPKeyFile,
		"SETTLE_SFTP_KNOWN_HOSTS=" + c.KnownHostsFile,
	}
	if c.PayProtocolURL != "" {
		env = append(env, "SETTLE_PAYPROTOCOL_URL="+c.PayProtocolURL, "SETTLE_PAYPROTOCOL_API_KEY="+c.PayProtocolAPIKey,
			"SETTLE_PAYPROTOCOL_SECRET_FILE="+c.PayProtocolSecretFile, "SETTLE_PAYPROTOCOL_DECIMALS="+PayProtocolDecimals)
	}
	if c.WeChatURL != "" {
		env = append(env, "SETTLE_WECHAT_URL="+c.WeChatURL, "SETTLE_WECHAT_MCHID="+c.WeChatMchID, "SETTLE_WECHAT_SERIAL="+c.WeChatSerial,
			"SETTLE_WECHAT_PRIVATE_KEY_FILE="+c.WeChatKeyFile, "SETTLE_WECHAT_PLATFORM_KEY_FILE="+c.WeChatPlatformKeyFile,
			"SETTLE_WECHAT_PLATFORM_SERIAL="+c.WeChatPlatformSerial, "SETTLE_WECHAT_RECEIVER_ACCOUNT="+c.WeChatReceiverAccount,
			"SETTLE_WECHAT_RECEIVER_NAME="+c.WeChatReceiverName)
	}
	return env
}

// Args renders c as the job's flags.
func (c Config) Args() []string {
	var out []string
	for _, kv := range c.Env() {
		k, v, _ := strings.Cut(kv, "=")
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "SETTLE_"), "_", "-"))
		out = append(out, "--"+flag, v)
	}
	return out
}

// Sim is a running simulator.
type Sim struct {
	Infinia     *infiniapaytest.Server
	PayProtocol *payprotocoltest.Server
	WeChat      *wechatpaytest.Server
	SFTP        *sftptest.Server
	Config      Config
	// Faults is Options.Faults, the injector every fake asks (nil: none):
	// a test adds a rule to it between two runs.
	Faults   *fault.Injector
	http     *http.Server
	ln       net.Listener
	sftpRoot string
	seeded   seeded
	timing   Timing
	files    atomic.Int64 // trade files handed to Infinia
}

// Start starts the fakes and writes their keys under o.Dir: the keys and
// serials are made on the first start and read back on later ones, so the
// job's configuration stays valid across restarts (the fakes' state does
// not: it starts empty).
func Start(o Options) (*Sim, error) {
	if o.Dir == "" {
		return nil, errors.New("paysim: Dir is required")
	}
	dir, err := filepath.Abs(o.Dir) // the printed key paths work from any directory
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	if o.AppID == "" {
		o.AppID = "APP-DEMO"
	}
	if o.PlatformID == "" {
		o.PlatformID = "PLATDEMO"
	}
	if o.Polls == 0 {
		o.Polls = 1
	}
	for _, a := range []*string{&o.HTTPAddr, &o.SFTPAddr} {
		if *a == "" {
			*a = "127.0.0.1:0"
		}
	}
	keysDir := filepath.Join(o.Dir, "keys")
	if o.KeyBits == 0 {
		o.KeyBits = 2048
	}
	sec, err := loadSecrets(keysDir, o.ShareKeys, o.KeyBits)
	if err != nil {
		return nil, err
	}
	keys := sec.infinia
	if err := keys.WriteFiles(keysDir); err != nil {
		return nil, err
	}
	clientKey, err := writeSSHKey(filepath.Join(keysDir, "sftp_client_ed25519"), sec.sftpClient)
	if err != nil {
		return nil, err
	}
	hostKey, err := ssh.NewSignerFromKey(sec.sftpHost)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("paysim: listen: %w", err)
	}
	url := httpBase(ln) + "/api/"
	s := &Sim{ln: ln, timing: o.Timing, Faults: o.Faults}
	tm := o.Timing
	if tm.Now == nil {
		tm.Now = time.Now
	}
	s.Infinia = infiniapaytest.New(infiniapaytest.Options{Keys: keys, AppID: o.AppID, PlatformID: o.PlatformID,
		Faults: o.Faults, Polls: o.Polls, BaseURL: url, Now: tm.Now, Latency: tm.Latency, UploadDelay: tm.UploadDelay,
		ShareDelay: tm.RevenueShareDelay, QPS: tm.InfiniaQPS, Memory: o.InfiniaMemory})
	apiSecret := sec.payProtocolSecret
	secretFile := filepath.Join(keysDir, "payprotocol_secret")
	if err := os.WriteFile(secretFile, []byte(apiSecret+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	s.PayProtocol = payprotocoltest.New(payprotocoltest.Options{APIKey: "PPKEY-DEMO", APISecret: apiSecret, Faults: o.Faults,
		Polls: o.Polls, TimeScale: 1.0 / 1000, Latency: tm.Latency, QPS: tm.PayProtocolQPS})
	wxKeys := sec.wechat
	wxDir := filepath.Join(keysDir, "wechat")
	if err := wxKeys.WriteFiles(wxDir); err != nil {
		ln.Close()
		return nil, err
	}
	review := o.ReviewPolls
	if review == 0 {
		review = -1
	}
	s.WeChat = wechatpaytest.New(wechatpaytest.Options{Keys: wxKeys, MchID: "1900000100", Faults: o.Faults, Polls: o.Polls,
		ReviewPolls: review, BaseURL: httpBase(ln), Latency: tm.Latency, OrderDelay: tm.DistributionDelay,
		ProviderQPS: tm.WeChatQPS, SubMerchantQPS: tm.WeChatSubMerchantQPS, Now: tm.Now, FeeBps: o.WeChatFeeBps,
		Memory: o.WeChatMemory})
	mux := http.NewServeMux()
	mux.Handle("GET /paysim/state", http.HandlerFunc(s.serveState))
	mux.Handle("GET /paysim/requests", http.HandlerFunc(s.serveRequests))
	mux.Handle("POST "+ControlPath, http.HandlerFunc(s.serveControl))
	mux.Handle("/v3/", s.WeChat)
	mux.Handle("/api/mer/", s.PayProtocol)
	mux.Handle("/", s.Infinia)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(ln)
	root := filepath.Join(o.Dir, "sftp")
	if err := os.MkdirAll(filepath.Join(root, "upload"), 0o755); err != nil {
		s.Close()
		return nil, err
	}
	s.sftpRoot = root
	s.SFTP, err = sftptest.Start(sftptest.Config{Root: root, HostKey: hostKey, AuthorizedKeys: []ssh.PublicKey{clientKey}, User: "settle",
		Faults: o.Faults, Addr: o.SFTPAddr, OnRename: s.received(root)})
	if err != nil {
		s.Close()
		return nil, err
	}
	known := filepath.Join(keysDir, "known_hosts")
	if err := s.SFTP.WriteKnownHosts(known); err != nil {
		s.Close()
		return nil, err
	}
	s.Config = Config{InfiniaURL: url, AppID: o.AppID, PlatformID: o.PlatformID,
		OurKeyFile: filepath.Join(keysDir, "platform_private.pem"), InfiniaPublicKeyFile: filepath.Join(keysDir, "infinia_public.pem"),
		SFTPAddr: s.SFTP.Addr(), SFTPUser: "settle", SFTPKeyFile: filepath.Join(keysDir, "sftp_client_ed25519"), KnownHostsFile: known,
		PayProtocolURL: httpBase(ln) + "/api/mer", PayProtocolAPIKey: "PPKEY-DEMO", PayProtocolSecretFile: secretFile,
		WeChatURL: httpBase(ln), WeChatMchID: "1900000100", WeChatSerial: wxKeys.MerchantSerial,
		WeChatKeyFile: filepath.Join(wxDir, wechatpaytest.MerchantKeyFile), WeChatPlatformKeyFile: filepath.Join(wxDir, wechatpaytest.PlatformPublicFile),
		WeChatPlatformSerial: wxKeys.PlatformSerial, WeChatReceiverAccount: demoReceiverAccount, WeChatReceiverName: "Demo Marketplace Ltd"}
	return s, nil
}

// demoReceiverAccount is the platform's WeChat Pay receiver in the
// simulation: below the seed's sub-merchant ids (1900000001 up), so that
// no seller is its own platform's receiver, a sponsor WeChat Pay refuses
// as a receiver of a distribution sent with unfreeze_unsplit (as
// wechatpaytest does). It was 1900009999, seller 9999's id when every
// seller has its own sub-merchant.
const demoReceiverAccount = "1800009999"

// received hands a trade file that landed in upload/ to the Infinia fake,
// as Infinia's own pick-up would.
func (s *Sim) received(root string) func(string) {
	return func(p string) {
		if path.Dir(p) != "upload" || strings.HasPrefix(path.Base(p), ".") {
			return
		}
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			return
		}
		defer f.Close()
		s.files.Add(1)
		_ = s.Infinia.ReceiveFile(path.Base(p), f) // a refused file shows in its upload status
	}
}

// Close stops the fakes.
func (s *Sim) Close() error {
	var errs []error
	if s.PayProtocol != nil {
		s.PayProtocol.Close()
	}
	if s.SFTP != nil {
		errs = append(errs, s.SFTP.Close())
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		errs = append(errs, s.http.Shutdown(ctx))
	} else if s.ln != nil {
		errs = append(errs, s.ln.Close())
	}
	return errors.Join(errs...)
}

// writeSSHKey writes priv in OpenSSH format (unless the file holds it
// already: the format has random bytes) and returns its public key.
func writeSSHKey(path string, priv ed25519.PrivateKey) (ssh.PublicKey, error) {
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(path); err == nil {
		if k, err := ssh.ParsePrivateKey(b); err == nil && bytes.Equal(k.PublicKey().Marshal(), pub.Marshal()) {
			return pub, nil
		}
	}
	block, err := ssh.MarshalPrivateKey(priv, "settle paysim client")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return pub, nil
}

// httpBase is the URL of the simulator's HTTP listener as a client on
// this machine dials it: one listening on every address (--http-addr
// :8700, 0.0.0.0 or [::]) is reached at 127.0.0.1, a loopback address,
// which settle takes over plain http ("http://[::]:8700" is none, and
// settle refused it: found by a review).
func httpBase(ln net.Listener) string {
	addr := ln.Addr().String()
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "http://" + addr
}
