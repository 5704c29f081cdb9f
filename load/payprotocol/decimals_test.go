package payprotocol_test

import (
	"strings"
	"testing"
	"time"

	"github.com/settlekit/settle/load/payprotocol"
)

// FuzzParseDecimals checks --payprotocol-decimals: what it accepts is found
// again by Client.Decimals under the chain and symbol an answer names, with
// the decimals as written, and within 0..MaxDecimals; a key Decimals never
// looks up ("01:USDT", "+1:USDT") is refused rather than kept, as it would
// leave the currency unconfigured while the flag says it is configured.
func FuzzParseDecimals(f *testing.F) {
	for _, s := range []string{"1:USDT=6", "1:USDT=6,3:USDT=18", " 1:USDT = 6 ,", "", "01:USDT=6",
		"+1:USDT=6", "1:USDT=+6", "1:USDT=06", "1:usdt=6", "0:USDT=6", "1:USDT=37", "1:USDT=6,1:USDT=6",
		"1: USDT=6", "1:USDT=-0", "1:USDT=٣", "99999999999999999999:USDT=6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := payprotocol.ParseDecimals(s)
		if err != nil {
			if !strings.Contains(err.Error(), "decimals") {
				t.Fatalf("ParseDecimals(%q): %v does not name the flag's values", s, err)
			}
			return
		}
		c, err := payprotocol.New(payprotocol.Config{BaseURL: "https://example.test/api/mer", APIKey: "k", APISecret: "s", HTTP: payprotocol.NewHTTPClient(time.Second), Decimals: m})
		if err != nil {
			t.Fatalf("ParseDecimals(%q) = %v, which New refuses: %v", s, m, err)
		}
		for k, d := range m {
			id, sym, ok := payprotocol.SplitDecimalsKey(k)
			if !ok {
				t.Fatalf("ParseDecimals(%q) kept key %q", s, k)
			}
			if k != payprotocol.DecimalsKey(id, sym) {
				t.Fatalf("ParseDecimals(%q) kept key %q, which Decimals looks up as %q: never found", s, k, payprotocol.DecimalsKey(id, sym))
			}
			if got, ok := c.Decimals(id, sym); !ok || got != d || d < 0 || d > payprotocol.MaxDecimals {
				t.Fatalf("ParseDecimals(%q): %s=%d, Decimals(%d, %q) = %d, %v", s, k, d, id, sym, got, ok)
			}
		}
	})
}
