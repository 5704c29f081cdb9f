package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

// Issue 13: credentials the providers refuse are found before anything is
// sent - a configuration error (exit 2), one line naming the provider and
// what was refused.
func TestInfiniaPreflightFindsRefusedCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.sim(nil, 0, nil, 0)
	params := func() infiniaParams {
		return infiniaParams{URL: sim.Config.InfiniaURL, AppID: sim.Config.AppID, PlatformID: sim.Config.PlatformID,
			KeyFile: sim.Config.OurKeyFile, PublicKeyFile: sim.Config.InfiniaPublicKeyFile, SFTPAddr: sim.Config.SFTPAddr,
			SFTPUser: sim.Config.SFTPUser, SFTPKey: sim.Config.SFTPKeyFile, KnownHosts: sim.Config.KnownHostsFile}
	}
	check := func(p infiniaParams) error {
		t.Helper()
		inf, err := newInfinia(p)
		if err != nil {
			t.Fatal(err)
		}
		defer inf.sftp.Close()
		return infiniapay.Preflight(context.Background(), inf.client, inf.sftp)
	}
	if err := check(params()); err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	// The balance query is in --infinia-preflight-currency: CNY, which
	// the simulator refuses unmapped, is refused for good (exit 2).
	cny := params()
	cny.Currencies, cny.PreflightCurrency = "none", "CNY"
	if err := check(cny); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "refused a balance query in CNY") {
		t.Fatalf("--infinia-preflight-currency CNY unmapped: kind %v: %v", pipeline.KindOf(err), err)
	}
	cny.Currencies = ""
	if err := check(cny); err != nil {
		t.Fatalf("--infinia-preflight-currency CNY, mapped to CNH: %v", err)
	}
	bad := params()
	bad.PreflightCurrency = "usd"
	if _, err := newInfinia(bad); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "--"+flagInfiniaProbe) {
		t.Fatalf("--infinia-preflight-currency usd: kind %v: %v", pipeline.KindOf(err), err)
	}

	dir := t.TempDir()
	other, err := infiniapaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	before := sim.Infinia.Calls("balance/query")
	wrongKey := params()
	wrongKey.KeyFile = filepath.Join(dir, infiniapaytest.PlatformPrivateFile) // Infinia holds another public key of ours
	err = check(wrongKey)
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "Infinia Pay") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("wrong API key: kind %v: %v", pipeline.KindOf(err), err)
	}
	if n := sim.Infinia.Calls("balance/query") - before; n != 1 {
		t.Fatalf("a refused signature was retried: %d calls", n)
	}
	wrongApp := params()
	wrongApp.AppID = "APP-NOT-OURS"
	if err := check(wrongApp); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "appId") {
		t.Fatalf("wrong appId: kind %v: %v", pipeline.KindOf(err), err)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	wrongSFTP := params()
	wrongSFTP.SFTPKey = filepath.Join(dir, "sftp_key")
	if err := os.WriteFile(wrongSFTP.SFTPKey, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	err = check(wrongSFTP)
	if pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "sftp") || !strings.Contains(err.Error(), "refused our key") {
		t.Fatalf("wrong SFTP key: kind %v: %v", pipeline.KindOf(err), err)
	}
	// Nothing reached the SFTP server's upload directory.
	if entries, err := os.ReadDir(filepath.Join(filepath.Dir(sim.Config.KnownHostsFile), "..", "sftp", "upload")); err != nil || len(entries) != 0 {
		t.Fatalf("%d files uploaded (%v)", len(entries), err)
	}
}

// A run whose Infinia key is refused ends with exit 2 and one line saying
// so, not one per trade file.
func TestInfiniaRefusedKeyExits2WithOneLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "6", "--seed", "2")
	sim := e.sim(nil, 6, nil, 1_000_000_00)
	other, err := infiniapaytest.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := other.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	out, code := e.runInfinia(sim, "--infinia-private-key-file", filepath.Join(dir, infiniapaytest.PlatformPrivateFile))
	if code != 2 || strings.Count(out, "refused credentials") != 1 {
		t.Fatalf("exit %d, want 2 with one line on the refused credentials:\n%s", code, out)
	}
	// The pre-flight found it before the upload stage sent anything.
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE sends > 0`); n != 0 {
		t.Errorf("%d side effects were sent with a key Infinia refuses", n)
	}
}

// --infinia-layout and --infinia-currencies reach the client: the trade
// file is written in the layout and the currency Infinia's way; a bad
// layout file or mapping is a configuration error naming the flag.
func TestInfiniaLayoutAndCurrencyFlags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.sim(nil, 0, nil, 0)
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout.json")
	os.WriteFile(layout, []byte(`{"columns":[{"header":"Order ID","field":"order_no"},{"header":"Currency","field":"currency"},
		{"header":"Amount","field":"amount"}],"errorFile":{"orderNo":"Order ID","reason":"Error Message"}}`), 0o600)
	p := infiniaParams{URL: sim.Config.InfiniaURL, AppID: sim.Config.AppID, PlatformID: sim.Config.PlatformID,
		KeyFile: sim.Config.OurKeyFile, PublicKeyFile: sim.Config.InfiniaPublicKeyFile, SFTPAddr: sim.Config.SFTPAddr,
		SFTPUser: sim.Config.SFTPUser, SFTPKey: sim.Config.SFTPKeyFile, KnownHosts: sim.Config.KnownHostsFile,
		LayoutFile: layout, Currencies: "CNY=CNH,HKD=HKX"}
	inf, err := newInfinia(p)
	if err != nil {
		t.Fatal(err)
	}
	path, _, _, _, err := inf.client.WriteTradeFile(dir, "TD.csv", func(emit func(pipeline.TradeRow) error) error {
		emit(pipeline.TradeRow{OrderNo: "O1", Currency: "HKD", Amount: "1.00", TradeTime: "2026-11-23T00:00:00Z"})
		return emit(pipeline.TradeRow{OrderNo: "O2", Currency: "CNY", Amount: "2.00", TradeTime: "2026-11-23T00:00:00Z"})
	})
	body, _ := os.ReadFile(path)
	if err != nil || string(body) != "Order ID,Currency,Amount\nO1,HKX,1.00\nO2,CNH,2.00\n" {
		t.Fatalf("%v:\n%s", err, body)
	}
	os.WriteFile(layout, []byte(`{"columns":[{"header":"Amount","field":"amount"}]}`), 0o600)
	for flag, bad := range map[string]infiniaParams{"infinia-layout": p, "infinia-currencies": func() infiniaParams { q := p; q.LayoutFile = ""; q.Currencies = "CNY"; return q }()} {
		if _, err := newInfinia(bad); pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "--"+flag) {
			t.Errorf("bad --%s: %v", flag, err)
		}
	}
}

// TestInfiniaRequireSignatureRefusesUnsignedAnswers: Infinia's published
// answers show no signature, so an unsigned one is taken; once Infinia
// confirms it signs them, --infinia-require-signature refuses one that
// comes without (the pre-flight finds it: exit 2, nothing sent), as an
// answer anyone on the way could have written (found by the security
// review: the client could, no flag asked it to).
func TestInfiniaRequireSignatureRefusesUnsignedAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sim := e.sim(nil, 0, nil, 0)
	target, err := url.Parse(sim.Config.InfiniaURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error { // Infinia's answers without their signature
		var env map[string]any
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		if json.Unmarshal(body, &env) == nil {
			delete(env, "signature")
			body, _ = json.Marshal(env)
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		r.Header.Del("Content-Length")
		return nil
	}
	front := httptest.NewServer(proxy)
	defer front.Close()
	params := infiniaParams{URL: front.URL + target.Path, AppID: sim.Config.AppID, PlatformID: sim.Config.PlatformID,
		KeyFile: sim.Config.OurKeyFile, PublicKeyFile: sim.Config.InfiniaPublicKeyFile, SFTPAddr: sim.Config.SFTPAddr,
		SFTPUser: sim.Config.SFTPUser, SFTPKey: sim.Config.SFTPKeyFile, KnownHosts: sim.Config.KnownHostsFile}
	for _, require := range []bool{false, true} {
		params.RequireSignature = require
		inf, err := newInfinia(params)
		if err != nil {
			t.Fatal(err)
		}
		err = infiniapay.Preflight(context.Background(), inf.client, inf.sftp)
		inf.sftp.Close()
		if !require && err != nil {
			t.Fatalf("unsigned answers, not required: %v", err)
		}
		if require && (pipeline.KindOf(err) != pipeline.KindUsage || !strings.Contains(err.Error(), "signature")) {
			t.Fatalf("unsigned answers, signature required: kind %v: %v; want a configuration error naming the signature", pipeline.KindOf(err), err)
		}
	}
	// The flag reaches the client.
	e.mustSettle("seed", "--date", testDate, "--orders", "5", "--sellers", "1")
	out, code := e.settle(append(e.infiniaArgs(sim), "--infinia-url", front.URL+target.Path, "--infinia-require-signature", "--skip-channel", "wechatpay", "--skip-channel", "payprotocol")...)
	if code != 2 || !strings.Contains(out, "signature") {
		t.Fatalf("run with --infinia-require-signature against unsigned answers: exit %d, want 2:\n%s", code, out)
	}
}
