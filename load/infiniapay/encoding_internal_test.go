package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/settlekit/settle/pipeline"
)

// gbkReason is "金额错误" (amount wrong) in GBK, as a Chinese export writes it.
const gbkReason = "\xbd\xf0\xb6\xee\xb4\xed\xce\xf3"

// TestAnErrorFileInGBKIsInAnotherLayout: an error file that is not UTF-8
// (GBK, the usual encoding of a Chinese provider's CSV export) was read
// byte for byte, and its reasons, which PostgreSQL refuses, stopped the
// upload stage on every run (found by a review). It is an error file in
// another layout (ErrLayout): the file is held with the reason.
func TestAnErrorFileInGBKIsInAnotherLayout(t *testing.T) {
	for _, bad := range []string{gbkReason, "amount\x00wrong"} {
		rows, err := ParseErrorFile(strings.NewReader("line,order_no,reason\n2,O1," + bad + "\n"))
		if !errors.Is(err, ErrLayout) {
			t.Fatalf("rows %+v, %v: want an error file in another layout", rows, err)
		}
	}
	if rows, err := ParseErrorFile(strings.NewReader("line,order_no,reason\n2,O1,金额错误\n")); err != nil || len(rows) != 1 || !utf8.ValidString(rows[0].Reason) {
		t.Fatalf("UTF-8 Chinese: %+v, %v", rows, err)
	}
}

// utf8Store refuses text that is not UTF-8, as PostgreSQL does.
type utf8Store struct{ *statusStore }

func (s utf8Store) FinishTradeFile(ctx context.Context, f pipeline.TradeFile, refused []pipeline.ProviderReject, to, reason string) error {
	for _, r := range refused {
		if !utf8.ValidString(r.Reason) || !utf8.ValidString(f.Reason) {
			return fmt.Errorf(`pq: invalid byte sequence for encoding "UTF8"`)
		}
	}
	return s.statusStore.FinishTradeFile(ctx, f, refused, to, reason)
}

// TestAGBKErrorFileHoldsItsFileAlone: in the upload stage, one refused
// file whose error file is in GBK stopped awaitUploads with a ledger error
// (exit 1, before distribute, for every seller of the date) on every run;
// it is held alone, and the others accepted.
func TestAGBKErrorFileHoldsItsFileAlone(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "line,order_no,reason\n2,O1,"+gbkReason+"\n")
	}))
	defer srv.Close()
	client := &Client{cfg: Config{HTTP: srv.Client(), Layout: DefaultLayout(), Currencies: DefaultCurrencies(),
		Timeout: time.Second, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxRetries: 1}}
	inner := &statusStore{}
	for i := range 5 {
		inner.files = append(inner.files, pipeline.TradeFile{ID: int64(i + 1), RequestNo: fmt.Sprintf("R%d", i), Name: fmt.Sprintf("F%d.csv", i), Status: StatusReceived})
	}
	api := failedOne{stageAPI: stageAPI{client}, failed: "R0", url: srv.URL + "/error-files/R0.csv"}
	c := &StageConfig{Store: utf8Store{inner}, API: api, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: 1}), Wait: time.Minute, Poll: 10 * time.Millisecond, Now: time.Now}
	problems, unusable := &pipeline.Problems{}, &unusableAnswers{}
	accepted, refused, err := awaitUploads(context.Background(), c, &pipeline.Run{ID: 1}, unusable, problems)
	if err != nil || accepted != 4 || refused != 1 {
		t.Fatalf("accepted %d, refused %d, err: %v; want the 4 others accepted and F0 held", accepted, refused, err)
	}
}

// TestAnErrorFileComesOverHTTPSOnly: the error file is unsigned and
// decides which of a refused file's items are rejected (out of the
// seller's payable) rather than held; its link carries a token. It was
// fetched over plain http from any host, and a redirect from https to
// plain http was followed (found by a review). Plain http is refused but
// from a loopback host (the simulator's), and so is a redirect down to it.
func TestAnErrorFileComesOverHTTPSOnly(t *testing.T) {
	t.Parallel()
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "line,order_no,reason\n2,O1,forged\n")
	}))
	defer elsewhere.Close()
	infinia := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/x.csv", http.StatusFound)
	}))
	defer infinia.Close()
	hc := NewHTTPClient(5 * time.Second)
	hc.Transport = infinia.Client().Transport
	client := &Client{cfg: Config{HTTP: hc, Layout: DefaultLayout(), Currencies: DefaultCurrencies(),
		Timeout: time.Second, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxRetries: -1}}
	for name, link := range map[string]string{
		"plain http, another host":       strings.Replace(elsewhere.URL, "127.0.0.1", "errors.example", 1) + "/error-files/R0.csv?token=secret",
		"https redirected to http, away": infinia.URL + "/error-files/R0.csv?token=secret",
	} {
		rows, err := client.ErrorFile(context.Background(), link)
		switch {
		case err == nil:
			t.Errorf("%s: rows %+v read from %s", name, rows, elsewhere.URL)
		case name == "plain http, another host" && !strings.Contains(err.Error(), "https only"):
			t.Errorf("%s: %v; want it refused for plain http", name, err)
		case strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: the link's token in %v", name, err)
		}
	}
	// The simulator's, on loopback, over plain http: read.
	if rows, err := client.ErrorFile(context.Background(), elsewhere.URL+"/error-files/R0.csv"); err != nil || len(rows) != 1 {
		t.Fatalf("loopback: %+v, %v", rows, err)
	}
}
