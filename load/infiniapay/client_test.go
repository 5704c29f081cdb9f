package infiniapay_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

const header = infiniapaytest.TradeFileHeader + "\n"

// TestEveryAPIRoundTrip drives all seven APIs and the error file through the
// real envelope against the fake, following one seller from binding to
// payout.
func TestEveryAPIRoundTrip(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{PlatformID: "P1"}, nil, nil)
	c := r.client

	url, err := c.BindAccount(ctx, infiniapay.BindRequest{RequestNo: "ABR-20250903-0001", SellerID: "S1",
		SellerCertNo: "91310000X", SellerName: "Seller One", StoreName: "One", StoreURL: "https://one.example",
		EntityType: "Corporate", Country: "CHN", Currency: "CNY", Note: "first", BacklinkURL: "https://back.example"})
	if err != nil || !strings.HasPrefix(url, r.srv.URL+"/api/bind/ABR-20250903-0001") {
		t.Fatalf("BindAccount = %q, %v", url, err)
	}
	if b, err := c.BindingStatus(ctx, "ABQ-1", "S1"); err != nil || b.Status != infiniapay.StatusPending || b.SellerID != "S1" {
		t.Fatalf("BindingStatus = %+v, %v", b, err)
	}
	if _, err := c.BindingStatus(ctx, "ABQ-2", "NOBODY"); !errors.Is(err, infiniapay.ErrNotFound) {
		t.Fatalf("unknown seller: %v, want ErrNotFound", err)
	}
	r.fake.SetBinding("S1", infiniapay.StatusActive)
	if b, err := c.BindingStatus(ctx, "ABQ-3", "S1"); err != nil || b.Status != infiniapay.StatusActive {
		t.Fatalf("BindingStatus = %+v, %v", b, err)
	}

	// Trade details: a good file in KWD (three decimals), polled to SUCCESS.
	name, err := c.TradeFileName("S1", "KWD", pipeline.Date{Year: 2025, Month: 9, Day: 3}, "TDU-20250903-0001")
	if err != nil || name != "TD_P1_S1_KWD_20250903_TDU-20250903-0001.csv" {
		t.Fatalf("TradeFileName = %q, %v", name, err)
	}
	file := header +
		"O1,SALE,GOODS,KWD,10.500,1.050,9.450,2025-09-03T10:00:00+08:00\n" +
		"O2,SALE,GOODS,KWD,2.000,0.200,1.800,2025-09-03T11:00:00Z\n" +
		"O3,REFUND,GOODS,KWD,1.000,0,0,2025-09-03T12:00:00Z\n"
	if err := r.fake.ReceiveFile("upload/"+name, strings.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{infiniapay.StatusReceived, infiniapay.StatusProcessing, infiniapay.StatusProcessing, infiniapay.StatusSuccess} {
		u, err := c.UploadStatus(ctx, "TDU-20250903-0001")
		if err != nil || u.Status != want || u.SellerID != "S1" || u.Currency != "KWD" || u.ErrorFileURL != "" {
			t.Fatalf("UploadStatus = %+v, %v; want %s", u, err, want)
		}
	}
	if _, err := c.UploadStatus(ctx, "TDU-NEVER"); !errors.Is(err, infiniapay.ErrNotFound) {
		t.Fatalf("unknown upload: %v", err)
	}
	if v, err := c.AvailableShare(ctx, "RSA-1", "S1", "KWD"); err != nil || v != 11250 {
		t.Fatalf("AvailableShare = %d, %v; want 11250 (9.450 + 1.800)", v, err)
	}

	// Revenue sharing.
	r.fake.SetBalance("KWD", 100000)
	res, err := c.RevenueShare(ctx, infiniapay.RevenueShareRequest{RequestNo: "RS-1", SellerID: "S1", Currency: "KWD", Amount: 11250, Note: "RS/20250903/S1/KWD"})
	if err != nil || res.Status != infiniapay.StatusProcessing || res.RequestNo != "RS-1" || res.Reference == "" {
		t.Fatalf("RevenueShare = %+v, %v", res, err)
	}
	if b, err := c.Balance(ctx, "BAL-1", "KWD"); err != nil || b.Available != 100000-11250 || b.Frozen != 11250 || b.Currency != "KWD" {
		t.Fatalf("Balance = %+v, %v", b, err)
	}
	for _, want := range []string{infiniapay.StatusProcessing, infiniapay.StatusProcessing, infiniapay.StatusSuccess, infiniapay.StatusSuccess} {
		got, err := c.RevenueShareStatus(ctx, "RS-1")
		if err != nil || got.Status != want || got.Reference != res.Reference {
			t.Fatalf("RevenueShareStatus = %+v, %v; want %s", got, err, want)
		}
	}
	// The same requestNo again replays, never pays twice.
	again, err := c.RevenueShare(ctx, infiniapay.RevenueShareRequest{RequestNo: "RS-1", SellerID: "S1", Currency: "KWD", Amount: 11250, Note: "RS/20250903/S1/KWD"})
	if err != nil || again.Status != infiniapay.StatusSuccess || again.Reference != res.Reference {
		t.Fatalf("replay = %+v, %v", again, err)
	}
	if b, err := c.Balance(ctx, "BAL-2", "KWD"); err != nil || b.Available != 88750 || b.Frozen != 0 {
		t.Fatalf("Balance after = %+v, %v", b, err)
	}
	if r.fake.Paid("S1", "KWD") != 11250 || len(r.fake.RevenueShares()) != 1 {
		t.Fatalf("paid %d in %d shares", r.fake.Paid("S1", "KWD"), len(r.fake.RevenueShares()))
	}
	if _, err := c.RevenueShareStatus(ctx, "RS-NEVER"); !errors.Is(err, infiniapay.ErrNotFound) {
		t.Fatalf("unknown share: %v", err)
	}

	// A failed upload and its error file.
	bad := header + "O9,SALE,GOODS,KWD,1.000,0.600,0.500,2025-09-03T10:00:00Z\n" +
		"O10,SALE,GOODS,USD,1.000,0,0,yesterday\n"
	if err := r.fake.ReceiveFile("TD_P1_S1_KWD_20250903_TDU-20250903-0002.csv", strings.NewReader(bad)); err != nil {
		t.Fatal(err)
	}
	var u infiniapay.Upload
	for i := 0; i < 4; i++ {
		if u, err = c.UploadStatus(ctx, "TDU-20250903-0002"); err != nil {
			t.Fatal(err)
		}
	}
	if u.Status != infiniapay.StatusFailed || u.ErrorFileURL == "" {
		t.Fatalf("failed upload = %+v", u)
	}
	rows, err := c.ErrorFile(ctx, u.ErrorFileURL)
	if err != nil || len(rows) != 3 || rows[0].Line != 2 || rows[0].OrderNo != "O9" ||
		!strings.Contains(rows[0].Reason, "exceeds amount") || rows[2].Line != 3 || rows[2].OrderNo != "O10" {
		t.Fatalf("ErrorFile = %+v, %v", rows, err)
	}
	if _, err := c.ErrorFile(ctx, r.srv.URL+"/api/error-files/NOPE.csv?token=secret"); !errors.Is(err, infiniapay.ErrNotFound) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("missing error file: %v", err)
	}
}

// TestChunkSizeAndLongPayloads: a request of several blocks goes out
// and is read back at each chunk size, up to Infinia's published
// requestData length (MaxRequestData: six 2048-bit blocks); one chunk
// size too small to carry a request within it is refused, nothing sent.
func TestChunkSizeAndLongPayloads(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ chunk, note int }{{1, 10}, {64, 150}, {245, 1000}} {
		r := newRig(t, infiniapaytest.Options{}, nil, func(cfg *infiniapay.Config) { cfg.ChunkSize = c.chunk })
		_, err := r.client.BindAccount(ctx, infiniapay.BindRequest{RequestNo: "ABR-LONG", SellerID: "S1", SellerCertNo: "X",
			SellerName: "S", StoreName: "S", StoreURL: "https://s.example", EntityType: "Individual", Country: "USA",
			Currency: "USD", Note: strings.Repeat("long note ", c.note/10)})
		switch {
		case c.chunk == 1 && !errors.Is(err, infiniapay.ErrTooLarge):
			t.Fatalf("chunk 1: %v, want ErrTooLarge", err)
		case c.chunk > 1 && err != nil:
			t.Fatalf("chunk %d: %v", c.chunk, err)
		}
	}
	k := keys(t)
	if _, err := infiniapay.New(infiniapay.Config{BaseURL: "http://x/", AppID: "A", OurKey: k.PlatformPrivate,
		InfiniaKey: k.InfiniaPublic, HTTP: infiniapay.NewHTTPClient(0), ChunkSize: 246}); err == nil {
		t.Fatal("a chunk of 246 bytes does not fit a 2048-bit PKCS #1 v1.5 block")
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	k := keys(t)
	good := infiniapay.Config{BaseURL: "https://uat-openapi.infiniax.com/api/", AppID: "A", OurKey: k.PlatformPrivate,
		InfiniaKey: k.InfiniaPublic, HTTP: infiniapay.NewHTTPClient(0)}
	if _, err := infiniapay.New(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*infiniapay.Config){
		"no HTTP client": func(c *infiniapay.Config) { c.HTTP = nil },
		"no keys":        func(c *infiniapay.Config) { c.OurKey = nil },
		"no appId":       func(c *infiniapay.Config) { c.AppID = "" },
		"bad URL":        func(c *infiniapay.Config) { c.BaseURL = "ftp://x" },
		// Infinia's answers need not be signed: read over plain http,
		// anyone on the way could say a revenue share succeeded.
		"plain http off this machine": func(c *infiniapay.Config) { c.BaseURL = "http://openapi.infiniax.com/api/" },
	} {
		cfg := good
		mod(&cfg)
		if _, err := infiniapay.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, local := range []string{"http://127.0.0.1:8700/api/", "http://localhost:8700/api/", "http://[::1]:8700/api/"} {
		cfg := good
		cfg.BaseURL = local
		if _, err := infiniapay.New(cfg); err != nil {
			t.Errorf("%s (the simulator): %v", local, err)
		}
	}
}

// TestNewNeverShowsAURLPassword: a base URL refused (plain http off this
// machine, one that does not parse) is named in the error, which goes to
// the logs, without the password a URL may carry.
func TestNewNeverShowsAURLPassword(t *testing.T) {
	k := keys(t)
	for _, u := range []string{"http://user:S3cretPw@openapi.infiniax.com/api/", "https://user:S3cretPw@openapi infiniax.com/api/", "ftp://user:S3cretPw@x/"} {
		_, err := infiniapay.New(infiniapay.Config{BaseURL: u, AppID: "A", OurKey: k.PlatformPrivate, InfiniaKey: k.InfiniaPublic, HTTP: infiniapay.NewHTTPClient(0)})
		if err == nil || strings.Contains(err.Error(), "S3cretPw") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestRequestsValidatedBeforeSending(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{}, nil, nil)
	for _, req := range []infiniapay.RevenueShareRequest{
		{RequestNo: "", SellerID: "S1", Currency: "USD", Amount: 1},
		{RequestNo: "RS-1", SellerID: "S1", Currency: "XXX", Amount: 1},
		{RequestNo: "RS-1", SellerID: "S1", Currency: "USD", Amount: 0},
		{RequestNo: "RS-1", SellerID: "S1", Currency: "USD", Amount: -5},
	} {
		if _, err := r.client.RevenueShare(ctx, req); err == nil || errors.Is(err, infiniapay.ErrUnknownOutcome) {
			t.Errorf("%+v: %v, want a definite error", req, err)
		}
	}
	if n := r.fake.Calls(infiniapay.APIRevenueShare); n != 0 {
		t.Fatalf("%d invalid requests reached Infinia", n)
	}
}
