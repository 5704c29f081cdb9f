package infiniapay_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/pipeline"
)

func TestParseCurrencies(t *testing.T) {
	m, err := infiniapay.ParseCurrencies(" CNY = CNH ")
	if err != nil || m.Out("CNY") != "CNH" || m.Out("USD") != "USD" || m.String() != "CNY=CNH" {
		t.Fatalf("%v %v", m, err)
	}
	if cur, err := m.In("CNH"); err != nil || cur != "CNY" {
		t.Fatalf("CNH read back as %q, %v", cur, err)
	}
	if cur, err := m.In("USD"); err != nil || cur != "USD" {
		t.Fatalf("USD read back as %q, %v", cur, err)
	}
	// Infinia cannot mean CNY when we send yuan as CNH; nor an unknown code.
	for _, code := range []string{"CNY", "XXX", ""} {
		if cur, err := m.In(code); err == nil {
			t.Errorf("%q read back as %q", code, cur)
		}
	}
	if m, err := infiniapay.ParseCurrencies("none"); err != nil || len(m) != 0 || m.Out("CNY") != "CNY" {
		t.Fatalf("none: %v %v", m, err)
	}
	for _, bad := range []string{"CNY", "CNY=cnh", "XXX=CNH", "CNY=CNH,CNY=CNT", "CNY=CNH,HKD=CNH", "CNY=USD"} {
		if _, err := infiniapay.ParseCurrencies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if infiniapay.DefaultCurrencies().Out("CNY") != "CNH" {
		t.Fatal("default does not map CNY to CNH")
	}
}

// Infinia settles yuan as CNH and refuses CNY (SYS-002): the client maps
// the platform's CNY on every request, file name and row, and reads CNH
// back as CNY on every answer.
func TestCurrencyMappedOnTheWire(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{Polls: -1, PlatformID: "P"}, nil, func(c *infiniapay.Config) { c.PlatformID = "P" })
	r.fake.SetBalance("CNY", 500_00)
	r.fake.SetBinding("S1", infiniapay.StatusActive)
	if b, err := r.client.Balance(ctx, "BQ-1", "CNY"); err != nil || b.Currency != "CNY" || b.Available != 500_00 {
		t.Fatalf("balance %+v, %v", b, err)
	}

	// A trade file of CNY: CNH in its name and rows, accepted by the fake.
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	name, err := r.client.TradeFileName("S1", "CNY", d, "TDU-1")
	if err != nil || name != "TD_P_S1_CNH_20261123_TDU-1.csv" {
		t.Fatalf("name %q, %v", name, err)
	}
	path, _, _, n, err := r.client.WriteTradeFile(t.TempDir(), name, func(emit func(pipeline.TradeRow) error) error {
		return emit(pipeline.TradeRow{OrderNo: "O1", TradeType: "SALE", ProductType: "GOODS", Currency: "CNY",
			Amount: "10.00", Commission: "1.00", SellerAmount: "9.00", TradeTime: "2026-11-23T10:00:00Z"})
	})
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	body, _ := os.ReadFile(path)
	if !strings.Contains(string(body), ",CNH,10.00,") || strings.Contains(string(body), "CNY") {
		t.Fatalf("trade file:\n%s", body)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if err := r.fake.ReceiveFile(name, f); err != nil {
		t.Fatal(err)
	}
	u, err := r.client.UploadStatus(ctx, "TDU-1")
	if err != nil || u.Status != infiniapay.StatusSuccess || u.Currency != "CNY" {
		t.Fatalf("upload %+v, %v", u, err)
	}
	if a, err := r.client.AvailableShare(ctx, "RSA-1", "S1", "CNY"); err != nil || a != 9_00 {
		t.Fatalf("available %d, %v", a, err)
	}
	res, err := r.client.RevenueShare(ctx, infiniapay.RevenueShareRequest{RequestNo: "RS-1", SellerID: "S1", Currency: "CNY", Amount: 9_00})
	if err != nil || res.Currency != "CNY" || res.Amount != 9_00 {
		t.Fatalf("revenue share %+v, %v", res, err)
	}
	if st, err := r.client.RevenueShareStatus(ctx, "RS-1"); err != nil || st.Currency != "CNY" || st.Status != infiniapay.StatusSuccess {
		t.Fatalf("status %+v, %v", st, err)
	}
	if r.fake.Paid("S1", "CNY") != 9_00 {
		t.Fatal("not paid")
	}

	// A file named with CNY is not taken, as Infinia would not.
	if err := r.fake.ReceiveFile("TD_P_S1_CNY_20261123_TDU-2.csv", strings.NewReader(infiniapaytest.TradeFileHeader+"\n")); err == nil {
		t.Fatal("the fake took a CNY file")
	}
}

// Without the mapping the client sends CNY, and Infinia refuses it.
func TestFakeRefusesCNY(t *testing.T) {
	r := newRig(t, infiniapaytest.Options{}, nil, func(c *infiniapay.Config) { c.Currencies = infiniapay.Currencies{} })
	r.fake.SetBalance("CNY", 100)
	_, err := r.client.Balance(context.Background(), "BQ-1", "CNY")
	var ie *infiniapay.Error
	if !errors.As(err, &ie) || ie.Code != infiniapay.CodeInvalidParameter || !ie.Definite() {
		t.Fatalf("CNY: %v", err)
	}
}

func TestLayoutFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "layout.json")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"columns":[{"header":"Order ID","field":"order_no"},{"header":"Type","field":"trade_type"},
		{"header":"Currency","field":"currency"},{"header":"Amount","field":"amount"},{"header":"Net","field":"seller_amount"},
		{"header":"Time","field":"trade_time"},{"header":"Channel","value":"ONLINE"}],
		"tradeTypes":{"SALE":"Sales","REFUND":"Returns"},"timeFormat":"2006-01-02 15:04:05",
		"errorFile":{"orderNo":"Order ID","reason":"Error Message","currency":"Currency"}}`)
	l, err := infiniapay.LoadLayout(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(l.Header(), ","); got != "Order ID,Type,Currency,Amount,Net,Time,Channel" {
		t.Fatal(got)
	}
	for name, bad := range map[string]string{
		"unknown key":   `{"columns":[{"header":"a","field":"order_no"}],"colour":1}`,
		"unknown field": `{"columns":[{"header":"a","field":"order_no"},{"header":"b","field":"price"}]}`,
		"no order":      `{"columns":[{"header":"a","field":"amount"}]}`,
		"twice":         `{"columns":[{"header":"a","field":"order_no"},{"header":"a","field":"amount"}]}`,
		"both":          `{"columns":[{"header":"a","field":"order_no","value":"x"}]}`,
		"no columns":    `{}`,
		"unknown zone":  `{"columns":[{"header":"a","field":"order_no"}],"timeZone":"Mars/Olympus"}`,
		"local zone":    `{"columns":[{"header":"a","field":"order_no"}],"timeZone":"Local"}`,
		"not JSON":      `columns: a`,
	} {
		write(bad)
		if _, err := infiniapay.LoadLayout(file); err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A layout that is not ours end to end: the client writes it, the fake
// (configured with it) validates it, refuses a row, and the client reads
// the error file in that layout.
func TestLayoutEndToEnd(t *testing.T) {
	l := infiniapay.Layout{
		Columns: []infiniapay.Column{{Header: "Order ID", Field: "order_no"}, {Header: "Type", Field: "trade_type"},
			{Header: "Currency", Field: "currency"}, {Header: "Amount", Field: "amount"}, {Header: "Commission", Field: "commission"},
			{Header: "Net", Field: "seller_amount"}, {Header: "Time", Field: "trade_time"}, {Header: "Channel", Value: "ONLINE"}},
		TradeTypes: map[string]string{"SALE": "Sales", "REFUND": "Returns"},
		TimeFormat: "2006-01-02 15:04:05",
		ErrorFile:  infiniapay.ErrorLayout{OrderNo: "Order ID", Reason: "Error Message"},
	}
	ctx := context.Background()
	r := newRig(t, infiniapaytest.Options{Polls: -1, Layout: l}, nil, func(c *infiniapay.Config) { c.PlatformID = "P"; c.Layout = l })
	r.fake.RefuseOrder("O2", "product type not allowed")
	rows := []pipeline.TradeRow{
		{OrderNo: "O1", TradeType: "SALE", ProductType: "GOODS", Currency: "CNY", Amount: "10.00", Commission: "1.00", SellerAmount: "9.00", TradeTime: "2026-11-23T10:00:00Z"},
		{OrderNo: "O1", TradeType: "REFUND", ProductType: "GOODS", Currency: "CNY", Amount: "2.00", Commission: "0.00", SellerAmount: "0.00", TradeTime: "2026-11-23T10:00:00Z"},
		{OrderNo: "O2", TradeType: "SALE", ProductType: "ARMS", Currency: "CNY", Amount: "5.00", Commission: "1.00", SellerAmount: "4.00", TradeTime: "2026-11-23T11:00:00+08:00"},
	}
	name, _ := r.client.TradeFileName("S1", "CNY", pipeline.Date{Year: 2026, Month: 11, Day: 23}, "TDU-9")
	write := func(c *infiniapay.Client) string {
		path, _, _, _, err := c.WriteTradeFile(t.TempDir(), name, func(emit func(pipeline.TradeRow) error) error {
			for _, row := range rows {
				if err := emit(row); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	path := write(r.client)
	body, _ := os.ReadFile(path)
	want := "Order ID,Type,Currency,Amount,Commission,Net,Time,Channel\n" +
		"O1,Sales,CNH,10.00,1.00,9.00,2026-11-23 10:00:00,ONLINE\n" +
		"O1,Returns,CNH,2.00,0.00,0.00,2026-11-23 10:00:00,ONLINE\n" +
		"O2,Sales,CNH,5.00,1.00,4.00,2026-11-23 03:00:00,ONLINE\n"
	if string(body) != want {
		t.Fatalf("trade file:\n%s\nwant:\n%s", body, want)
	}
	// The same rows with the times in Beijing's wall clock, as a template
	// without an offset may want them.
	bj := l
	bj.TimeZone = "Asia/Shanghai"
	r2 := newRig(t, infiniapaytest.Options{Polls: -1, Layout: bj}, nil, func(c *infiniapay.Config) { c.PlatformID = "P"; c.Layout = bj })
	if body, _ := os.ReadFile(write(r2.client)); !strings.Contains(string(body), ",2026-11-23 18:00:00,ONLINE\n") || !strings.Contains(string(body), ",2026-11-23 11:00:00,ONLINE\n") {
		t.Fatalf("trade file with timeZone Asia/Shanghai:\n%s", body)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if err := r.fake.ReceiveFile(name, f); err != nil {
		t.Fatal(err)
	}
	u, err := r.client.UploadStatus(ctx, "TDU-9")
	if err != nil || u.Status != infiniapay.StatusFailed {
		t.Fatalf("upload %+v, %v", u, err)
	}
	got, err := r.client.ErrorFile(ctx, u.ErrorFileURL)
	if err != nil || len(got) != 1 || got[0].OrderNo != "O2" || got[0].Reason != "product type not allowed" {
		t.Fatalf("error rows %+v, %v", got, err)
	}
}

// An error file in a layout we were not told of is a clear error naming
// its header, never a silent misread.
func TestErrorFileUnknownLayout(t *testing.T) {
	l := infiniapay.DefaultLayout()
	_, err := l.ParseErrorFile(strings.NewReader("Row,Order ID,Error Message\n2,O1,bad\n"), infiniapay.DefaultCurrencies())
	if !errors.Is(err, infiniapay.ErrLayout) || !strings.Contains(err.Error(), `"Row,Order ID,Error Message"`) || !strings.Contains(err.Error(), `"order_no"`) {
		t.Fatalf("%v", err)
	}
	// The columns may come in any order, among others; a currency column is
	// read back to the platform's code.
	l.ErrorFile.Currency = "currency"
	rows, err := l.ParseErrorFile(strings.NewReader("reason,extra,order_no,currency,line\nbad amount,x,O1,CNH,2\n"), infiniapay.DefaultCurrencies())
	if err != nil || len(rows) != 1 || rows[0] != (infiniapay.ErrorRow{Line: 2, OrderNo: "O1", Reason: "bad amount", Currency: "CNY"}) {
		t.Fatalf("%+v, %v", rows, err)
	}
}

// A mapping names the same money under Infinia's code: amounts go out
// with the platform currency's decimals, so a code Infinia reads with
// other decimals would move money by a power of ten ("12.34" sent for
// 1234 US cents, read as 12.34 yen, 1.234 dinars). A platform currency
// mapped onto a known one of another exponent is refused, even when the
// two are swapped (each then mapped, which the check for a code "also a
// platform currency sent as itself" lets through).
func TestParseCurrenciesRefusesAnotherExponent(t *testing.T) {
	for _, bad := range []string{"USD=JPY,JPY=USD", "JPY=KWD,KWD=JPY", "USD=KWD,KWD=EUR"} {
		if m, err := infiniapay.ParseCurrencies(bad); err == nil {
			t.Errorf("%q accepted: %v", bad, m)
		} else if !strings.Contains(err.Error(), "decimals") {
			t.Errorf("%q: %v, want it to say the decimals differ", bad, err)
		}
	}
	// Same decimals, or a code settle does not know (CNH): taken.
	for _, good := range []string{"CNY=CNH", "JPY=JPX", "KWD=KWX,BHD=BHX"} {
		if _, err := infiniapay.ParseCurrencies(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}
