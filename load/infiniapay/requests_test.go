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
