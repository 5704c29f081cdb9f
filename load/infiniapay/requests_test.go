package infiniapay

import (
	"regexp"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

func TestKeysAreDeterministicAndShaped(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	a, b := TradeRequestNo(d, "S1", "USD", 1), TradeRequestNo(d, "S1", "USD", 1)
	if a != b || a == TradeRequestNo(d, "S1", "USD", 2) || a == TradeRequestNo(d, "S2", "USD", 1) || a == TradeRequestNo(d, "S1", "CNY", 1) {
		t.Fatal("requestNo not a function of date, seller, currency and attempt")
	}
	ok := regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)
	for _, k := range []string{a, RevenueShareRequestNo(d, "weird seller/id", "USD", 12), BindingRequestNo("ABQ", d, "S1")} {
		if !ok.MatchString(k) {
			t.Errorf("key %q is not [0-9A-Za-z_-]{1,64}", k)
		}
	}
	if got, err := TradeFileName("PLAT", "INF1", "USD", d, a); err != nil || got != "TD_PLAT_INF1_USD_20261123_"+a+".csv" {
		t.Fatal(got, err)
	}
	for _, bad := range [][2]string{{"PLAT_1", "INF1"}, {"PLAT", "INF_1"}, {"PLAT", ""}, {"", "INF1"}} {
		if _, err := TradeFileName(bad[0], bad[1], "USD", d, a); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	// The seller ids transform lets through are those that name a file.
	for id, good := range map[string]bool{"INF1": true, "a-B-9": true, strings.Repeat("x", 64): true,
		"INF_1": false, "": false, "INF 1": false, "INF/1": false, "ÉTÉ": false, strings.Repeat("x", 65): false} {
		_, nameErr := TradeFileName("PLAT", id, "USD", d, a)
		if err := CheckSellerID(id); (err == nil) != good || (nameErr == nil) != good {
			t.Errorf("seller id %q: check %v, file name %v; want usable %v", id, err, nameErr, good)
		}
	}
}

// TestEveryMoneyRequestNoIsAFunctionOfDateSellerCurrencyAndAttempt: two
// requests that differ in any of date, seller, currency or attempt never
// share a requestNo (Infinia would take the second for the first: a
// seller's EUR share answered as its USD one, a retry after FAILED as the
// failed attempt, one date's payout as another's), and a requestNo is the
// same in every version of settle, so that a re-run after an upgrade asks
// about what an earlier one sent.
func TestEveryMoneyRequestNoIsAFunctionOfDateSellerCurrencyAndAttempt(t *testing.T) {
	d := pipeline.Date{Year: 2026, Month: 11, Day: 23}
	next := pipeline.Date{Year: 2026, Month: 11, Day: 24}
	for name, key := range map[string]func(pipeline.Date, string, pipeline.Currency, int) string{
		"trade upload": TradeRequestNo, "revenue share": RevenueShareRequestNo} {
		base := key(d, "S1", "USD", 1)
		if key(d, "S1", "USD", 1) != base {
			t.Errorf("%s: requestNo not deterministic", name)
		}
		for what, other := range map[string]string{
			"date": key(next, "S1", "USD", 1), "seller": key(d, "S2", "USD", 1),
			"currency": key(d, "S1", "EUR", 1), "attempt": key(d, "S1", "USD", 2),
		} {
			if other == base {
				t.Errorf("%s: another %s, the same requestNo %s", name, what, base)
			}
		}
	}
	for got, want := range map[string]string{
		TradeRequestNo(d, "S1", "USD", 1):        "TDU-20261123-7170B1C9197C-1",
		RevenueShareRequestNo(d, "S1", "USD", 1): "RS-20261123-9194DF78CAA3-1",
		RevenueShareRequestNo(d, "S1", "USD", 2): "RS-20261123-9194DF78CAA3-2",
		BindingRequestNo("ABQ", d, "S1"):         "ABQ-20261123-2808482B9332",
	} {
		if got != want {
			t.Errorf("requestNo %s, want %s as every earlier version made it", got, want)
		}
	}
}
