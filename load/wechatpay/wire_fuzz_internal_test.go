package wechatpay

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

// FuzzParseAuthorization: an Authorization header ParseAuthorization takes
// is written back by Authorization.String as one that parses to the same;
// one of our own (token characters, as Client sends) reads back exactly.
func FuzzParseAuthorization(f *testing.F) {
	a := Authorization{MchID: "1900000001", Nonce: "593BEC0C930BF1AFEB40B4A08C8FB242", Timestamp: 1554208460, Serial: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", Signature: "uOVRnA4qG/MNnYzdQxJanN+zU+lTgIcnU9BxGw5dKjK+VdEUz2FeIoC+D5sB/LN+nGzX3hfZg6r5wT1pl2ZobmIc6p0ldN7J6yDgUzbX8Uk3sD4a4eZVPTBvqNDoUqcYMlZ9uuDdCvNv4TM3c1WzsXUrExwVkI1XO5jCNbgDJ25nkT/c1gIFvqoogl7MdSFGc4W4xZsqCItnqbypR3RuGIlR9h9vlRsy7zJR9PBI83X8alLDIfR1ukt1P7tMnmogZ0cuDY8cZsd8ZlCgLadmvej58SLsIkVxFJ8XyUgx9FmutKSYTmYtWBZ0+tNvfGmbXU7cob8H/4nLBiCwIUFluw=="}
	f.Add(a.String(), a.MchID, a.Nonce, a.Timestamp, a.Serial, a.Signature)
	f.Add(AuthScheme+` mchid="1",nonce_str="n",timestamp="+5",serial_no="s",signature="x"`, "1", "n", int64(-5), "s", "")
	f.Add(AuthScheme+` signature="x",serial_no="s",timestamp="0",nonce_str="n",mchid="1"`, "", "", int64(0), "", "x")
	f.Add(AuthScheme+` mchid="1",mchid="1",timestamp="0",serial_no="s",signature="x"`, "a,b", `"`, int64(1), "=", "a b")
	f.Add(AuthScheme+` mchid="a,b",nonce_str="n",timestamp="0",serial_no="s",signature="x"`, "a", "b", int64(9), "c", "d")
	f.Fuzz(func(t *testing.T, h, mch, nonce string, ts int64, serial, sig string) {
		got, err := ParseAuthorization(h)
		if err == nil {
			again, err := ParseAuthorization(got.String())
			if err != nil || again != got {
				t.Fatalf("%q parsed as %+v, written %q, read back %+v, %v", h, got, got.String(), again, err)
			}
		} else if !strings.HasPrefix(err.Error(), "authorization: ") {
			t.Fatalf("error %q does not say it is the header's", err)
		}
		ours := Authorization{MchID: mch, Nonce: nonce, Timestamp: ts, Serial: serial, Signature: sig}
		if !tokenChars(mch) || !tokenChars(nonce) || !tokenChars(serial) || strings.ContainsAny(sig, `",`) || sig == "" {
			return
		}
		back, err := ParseAuthorization(ours.String())
		if err != nil || back != ours {
			t.Fatalf("%+v written %q, read %+v, %v", ours, ours.String(), back, err)
		}
	})
}

// FuzzReadSettlement reads any settlement detail WeChat Pay may answer:
// one taken has a batch, a known currency, amounts none negative, trade
// dates in order that are the dates written (yyyyMMdd or yyyy-MM-dd, read
// back the same), and never panics; one refused is an error.
func FuzzReadSettlement(f *testing.F) {
	f.Add(`{"batch_id":"100","settlement_date":"20240102","trade_start_date":"20240101","trade_end_date":"20240101","amount":{"settled":100,"unsettle":0,"currency":"CNY","pay":100,"refund":0,"net":100,"fee":0}}`)
	f.Add(`{"batch_id":"100","trade_start_date":"2024-01-01","trade_end_date":"2024-01-02","amount":{"currency":"HKD","settled":5}}`)
	f.Add(`{"batch_id":"1","trade_start_date":"20240102","trade_end_date":"20240101","amount":{"currency":"CNY"}}`)
	f.Add(`{"batch_id":"1","trade_start_date":"2024011","trade_end_date":"20240230","amount":{"currency":"CNY","fee":-1}}`)
	f.Add(`{"batch_id":"1","trade_start_date":"+2024-01-01","trade_end_date":" 20240101","amount":{"currency":"cny"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var w wireSettlement
		if json.Unmarshal([]byte(body), &w) != nil {
			return
		}
		s, err := readSettlement(w, SettleStateSettled)
		if err != nil {
			return
		}
		a := s.Amount
		switch {
		case s.BatchID == "" || !a.Currency.Valid():
			t.Fatalf("taken %+v", s)
		case a.Settled < 0 || a.Unsettled < 0 || a.Pay < 0 || a.Refund < 0 || a.Fee < 0:
			t.Fatalf("negative amount taken: %+v", a)
		case s.TradeEnd.Before(s.TradeStart):
			t.Fatalf("trade dates out of order taken: %+v", s)
		}
		for _, d := range []struct {
			wrote string
			read  pipeline.Date
		}{{w.TradeStartDate, s.TradeStart}, {w.TradeEndDate, s.TradeEnd}, {w.SettlementDate, s.SettlementDate}} {
			if d.wrote == "" && d.read.IsZero() {
				continue
			}
			if d.wrote != d.read.Compact() && d.wrote != d.read.String() {
				t.Fatalf("date %s read as %s", strconv.Quote(d.wrote), d.read)
			}
		}
	})
}
