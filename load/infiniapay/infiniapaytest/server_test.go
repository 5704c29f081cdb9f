package infiniapaytest_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

var testKeys = sync.OnceValues(infiniapaytest.GenerateKeys)

// start runs a fake and returns it with a client of it.
func start(t *testing.T, o infiniapaytest.Options) (*infiniapaytest.Server, *infiniapay.Client, string) {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	o.Keys, o.AppID = k, "APP"
	fake := infiniapaytest.New(o)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := fake.ClientConfig(srv.URL)
	cfg.RetryBase, cfg.RetryMax = time.Millisecond, time.Millisecond
	c, err := infiniapay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fake, c, srv.URL
}

const head = infiniapaytest.TradeFileHeader + "\n"

// final polls an upload until it stops moving and returns it.
func final(t *testing.T, c *infiniapay.Client, requestNo string) infiniapay.Upload {
	t.Helper()
	for i := 0; i < 20; i++ {
		u, err := c.UploadStatus(context.Background(), requestNo)
		if err != nil {
			t.Fatal(err)
		}
		if u.Status == infiniapay.StatusSuccess || u.Status == infiniapay.StatusFailed {
			return u
		}
	}
	t.Fatal("upload never final")
	return infiniapay.Upload{}
}

func TestReceiveFileValidates(t *testing.T) {
	const good = "O1,SALE,GOODS,USD,10.00,1.00,9.00,2025-09-03T10:00:00Z\n"
	for _, tc := range []struct {
		name, body, reason string
		line               int
	}{
		{"empty", "", "empty file", 1},
		{"no header", good, "header", 1},
		{"other header", "order,type\n" + good, "header", 1},
		{"trade type", head + "O1,SWAP,GOODS,USD,10.00,1.00,9.00,2025-09-03T10:00:00Z\n", "trade_type", 2},
		{"currency", head + "O1,SALE,GOODS,EUR,10.00,1.00,9.00,2025-09-03T10:00:00Z\n", "currency", 2},
		{"too many decimals", head + "O1,SALE,GOODS,USD,10.001,1.00,9.00,2025-09-03T10:00:00Z\n", "amount is not an exact", 2},
		{"exponent", head + "O1,SALE,GOODS,USD,1e1,1.00,9.00,2025-09-03T10:00:00Z\n", "amount is not an exact", 2},
		{"negative", head + "O1,REFUND,GOODS,USD,-1.00,0,0,2025-09-03T10:00:00Z\n", "negative", 2},
		{"split too big", head + "O1,SALE,GOODS,USD,10.00,1.01,9.00,2025-09-03T10:00:00Z\n", "exceeds amount", 2},
		{"time", head + "O1,SALE,GOODS,USD,10.00,1.00,9.00,2025-09-03 10:00:00\n", "RFC 3339", 2},
		{"fields", head + "O1,SALE,GOODS,USD,10.00\n", "8 fields", 2},
		{"duplicate order", head + good + good, "duplicate SALE row", 3},
		{"quoting", head + "\"O1,SALE\n", "CSV", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, c, _ := start(t, infiniapaytest.Options{Polls: -1})
			if err := fake.ReceiveFile("TD_P_S1_USD_20250903_TDU-1.csv", strings.NewReader(tc.body)); err != nil {
				t.Fatal(err)
			}
			u := final(t, c, "TDU-1")
			if u.Status != infiniapay.StatusFailed {
				t.Fatalf("status %s", u.Status)
			}
			rows, err := c.ErrorFile(context.Background(), u.ErrorFileURL)
			if err != nil || len(rows) == 0 || rows[0].Line != tc.line || !strings.Contains(rows[0].Reason, tc.reason) {
				t.Fatalf("error rows %+v, %v; want line %d %q", rows, err, tc.line, tc.reason)
			}
			if fake.Available("S1", "USD") != 0 {
				t.Fatal("a failed file credited the seller")
			}
		})
	}
}

func TestReceiveFileNamesAndDuplicates(t *testing.T) {
	fake, c, _ := start(t, infiniapaytest.Options{PlatformID: "P", Polls: -1})
	for _, name := range []string{"td_P_S1_USD_20250903_TDU-1.csv", "TD_P_S1_USD_20250903_TDU-1.txt", "TD_P_S1_XXX_20250903_TDU-1.csv",
		"TD_P_S1_USD_2025-09-03_TDU-1.csv", "TD_P_S_1_USD_20250903_TDU-1.csv", "TD_OTHER_S1_USD_20250903_TDU-1.csv", "TD_P__USD_20250903_TDU-1.csv"} {
		if err := fake.ReceiveFile(name, strings.NewReader(head)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	file := head + "O1,SALE,GOODS,USD,10.00,1.00,9.00,2025-09-03T10:00:00+08:00\n" +
		"O1,REFUND,GOODS,USD,3.00,0,0,2025-09-03T11:00:00+08:00\n" // a SALE and a REFUND row per order
	const name = "upload/TD_P_S1_USD_20250903_TDU-1.csv"
	if err := fake.ReceiveFile(name, strings.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	if err := fake.ReceiveFile(name, strings.NewReader(file)); err != nil { // the same bytes again: nothing changes
		t.Fatal(err)
	}
	if u := final(t, c, "TDU-1"); u.Status != infiniapay.StatusSuccess || fake.Available("S1", "USD") != 900 {
		t.Fatalf("upload %+v, available %d; want SUCCESS and 9.00 (SALE rows only)", u, fake.Available("S1", "USD"))
	}
	// Other bytes under the same requestNo: FAILED, and the credit withdrawn.
	if err := fake.ReceiveFile(name, strings.NewReader(file+"O3,SALE,GOODS,USD,1.00,0,1.00,2025-09-03T12:00:00Z\n")); err != nil {
		t.Fatal(err)
	}
	u := final(t, c, "TDU-1")
	rows, err := c.ErrorFile(context.Background(), u.ErrorFileURL)
	if u.Status != infiniapay.StatusFailed || err != nil || len(rows) != 1 || !strings.Contains(rows[0].Reason, "duplicate requestNo") || fake.Available("S1", "USD") != 0 {
		t.Fatalf("duplicate: %+v %+v %v, available %d", u, rows, err, fake.Available("S1", "USD"))
	}
}

func TestUploadPollsAndStuck(t *testing.T) {
	inj := fault.New(1, fault.Rule{Endpoint: "trade-details/query", Kind: fault.Stuck, Calls: []int{2}, Polls: 3})
	fake, c, _ := start(t, infiniapaytest.Options{Polls: 1, Faults: inj})
	if err := fake.ReceiveFile("TD_P_S1_JPY_20250903_TDU-9.csv", strings.NewReader(head+"O1,SALE,X,JPY,1000,100,900,2025-09-03T10:00:00Z\n")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 6; i++ {
		u, err := c.UploadStatus(context.Background(), "TDU-9")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, u.Status)
	}
	want := "RECEIVED PROCESSING PROCESSING PROCESSING PROCESSING SUCCESS" // 1 poll + 3 stuck
	if strings.Join(got, " ") != want {
		t.Fatalf("statuses %v, want %s", got, want)
	}
	if fake.Available("S1", "JPY") != 900 {
		t.Fatalf("available %d", fake.Available("S1", "JPY"))
	}
}

func TestRevenueSharingRules(t *testing.T) {
	ctx := context.Background()
	inj := fault.New(1, fault.Rule{Endpoint: "revenue-sharing/query", Kind: fault.Stuck, Calls: []int{1}, Polls: 2})
	fake, c, _ := start(t, infiniapaytest.Options{Polls: 1, Faults: inj})
	fake.SetBinding("S1", infiniapay.StatusActive)
	fake.SetBinding("S2", infiniapay.StatusPending)
	fake.SetBalance("CNY", 1000)
	fake.SetAvailable("S1", "CNY", 800)
	fake.SetAvailable("S2", "CNY", 800)

	req := func(no, seller string, amount int64) infiniapay.RevenueShareResult {
		t.Helper()
		res, err := c.RevenueShare(ctx, infiniapay.RevenueShareRequest{RequestNo: no, SellerID: seller, Currency: "CNY", Amount: amount})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	req("RS-1", "S1", 700)
	if fake.Balance("CNY") != 300 || fake.Available("S1", "CNY") != 100 || fake.Paid("S1", "CNY") != 700 {
		t.Fatal("accepted share not debited at acceptance")
	}
	// Stuck on the first poll: the one normal PROCESSING poll plus two more.
	var seen []string
	for i := 0; i < 4; i++ {
		res, err := c.RevenueShareStatus(ctx, "RS-1")
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, res.Status)
	}
	if strings.Join(seen, " ") != "PROCESSING PROCESSING PROCESSING SUCCESS" {
		t.Fatalf("statuses %v", seen)
	}
	req("RS-2", "S2", 10)  // seller not ACTIVE
	req("RS-3", "S1", 200) // above the available share (100 left)
	fake.SetAvailable("S1", "CNY", 10_000)
	req("RS-4", "S1", 301) // insufficient balance (300 left)
	want := map[string]string{"RS-2": "seller not ACTIVE", "RS-3": "available revenue share", "RS-4": "insufficient balance"}
	for _, sh := range fake.RevenueShares()[1:] {
		if sh.Status != infiniapay.StatusFailed || !strings.Contains(sh.FailReason, want[sh.RequestNo]) {
			t.Errorf("%s: %s %q, want FAILED %q", sh.RequestNo, sh.Status, sh.FailReason, want[sh.RequestNo])
		}
	}
	if fake.Balance("CNY") != 300 || fake.Paid("S1", "CNY") != 700 || fake.Paid("S2", "CNY") != 0 {
		t.Fatal("a failed share moved money")
	}
	// Reusing a requestNo with other fields is refused, and pays nothing.
	_, err := c.RevenueShare(ctx, infiniapay.RevenueShareRequest{RequestNo: "RS-1", SellerID: "S1", Currency: "CNY", Amount: 1})
	var ie *infiniapay.Error
	if !errors.As(err, &ie) || ie.Code != infiniapay.CodeInvalidParameter || fake.Paid("S1", "CNY") != 700 {
		t.Fatalf("reused requestNo: %v", err)
	}
}

func TestMountedUnderAPrefix(t *testing.T) {
	fake, c, url := start(t, infiniapaytest.Options{})
	_ = fake
	cfg := fake.ClientConfig(url + "/some/prefix/")
	c2, err := infiniapay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	redirect, err := c2.BindAccount(context.Background(), infiniapay.BindRequest{RequestNo: "ABR-1", SellerID: "S1", SellerCertNo: "X",
		SellerName: "S", StoreName: "S", StoreURL: "https://s.example", EntityType: "Corporate", Country: "DEU", Currency: "EUR"})
	if err != nil || redirect != url+"/some/prefix/bind/ABR-1" {
		t.Fatalf("redirect %q, %v", redirect, err)
	}
	if _, err := c.BindAccount(context.Background(), infiniapay.BindRequest{RequestNo: "ABR-2", SellerID: "S1", SellerCertNo: "X",
		SellerName: "S", StoreName: "S", StoreURL: "https://s.example", EntityType: "Person", Country: "DEU", Currency: "EUR"}); err == nil {
		t.Fatal("entityType Person accepted")
	}
	if got := fake.Balance(pipeline.Currency("EUR")); got != 0 {
		t.Fatal(got)
	}
}

func TestWriteFiles(t *testing.T) {
	k, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := k.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{infiniapaytest.PlatformPrivateFile, infiniapaytest.PlatformPublicFile, infiniapaytest.InfiniaPrivateFile, infiniapaytest.InfiniaPublicFile} {
		if _, err := infiniapay.LoadPublicKey(dir + "/" + f); err != nil && !strings.Contains(f, "private") {
			t.Errorf("%s: %v", f, err)
		}
		if _, err := infiniapay.LoadPrivateKey(dir + "/" + f); err != nil && strings.Contains(f, "private") {
			t.Errorf("%s: %v", f, err)
		}
	}
}
