package infiniapay_test

import (
	"testing"

	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/pipeline"
)

// FuzzParseCurrencies checks the currency mapping (--infinia-currencies):
// a mapping that parses sends every currency under a code that reads back
// as that currency, reads every code it accepts as a currency sent under
// that code, and is written (String) as a mapping that parses the same.
func FuzzParseCurrencies(f *testing.F) {
	for _, s := range []string{"CNY=CNH", "", "CNY=CNH,HKD=HKD", "CNY=USD,USD=CNY", "CNY=CNH,USD=CNH", "CNY=USD", " CNY = CNH ,",
		"cny=CNH", "CNY=cnh", "CNY=CNHX", "CNY=CNH,CNY=CNH", "XXX=CNH", "CNY=", "=CNH", "CNY"} {
		f.Add(s, "CNH")
	}
	codes := []pipeline.Currency{"CNY", "USD", "HKD", "JPY", "EUR", "KWD"}
	f.Fuzz(func(t *testing.T, s, code string) {
		m, err := infiniapay.ParseCurrencies(s)
		if err != nil {
			return
		}
		for _, c := range codes {
			if back, err := m.In(m.Out(c)); err != nil || back != c {
				t.Fatalf("mapping %q: %s goes out as %s, read back as %q, %v", s, c, m.Out(c), back, err)
			}
		}
		if c, err := m.In(code); err == nil && m.Out(c) != code {
			t.Fatalf("mapping %q: %q read as %s, which goes out as %s", s, code, c, m.Out(c))
		}
		again, err := infiniapay.ParseCurrencies(m.String())
		if m.String() == "none" {
			again, err = infiniapay.ParseCurrencies("")
		}
		if err != nil || again.String() != m.String() {
			t.Fatalf("mapping %q written %q reads back as %v, %v", s, m.String(), again, err)
		}
	})
}
