package pipeline

import "testing"

func TestChannelsSpecAndNames(t *testing.T) {
	if s, ok := testChannels.Spec(walletCh); !ok || s.LateRefundIgnored == "" {
		t.Errorf("Spec(%s) = %+v, %v", walletCh, s, ok)
	}
	if s, ok := testChannels.Spec("alipay"); ok || s.Channel != "" || s.Account != "" {
		t.Errorf("Spec(alipay) = %+v, %v: want unknown", s, ok)
	}
	if !testChannels.Known(cryptoCh) || testChannels.Known("") || testChannels.Known("Card") {
		t.Error("Known: want exact names only")
	}
	for n, want := range []string{"", "card", "card or crypto", "card, crypto or wallet"} {
		if got := testChannels[:n].Names(); got != want {
			t.Errorf("Names of %d = %q, want %q", n, got, want)
		}
	}
}

func TestSellerAccount(t *testing.T) {
	s := Seller{ID: "S1", Accounts: map[string]string{"bank": "B1"}}
	if s.Account("bank") != "B1" || s.Account("wallet") != "" || (Seller{}).Account("bank") != "" {
		t.Errorf("Account: %q %q", s.Account("bank"), s.Account("wallet"))
	}
}
