package pipeline

import (
	"slices"
	"testing"
)

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

// TestSharedAccounts: sellers with the same account at a provider whose
// accounts are one seller's are each marked with the others, whichever
// channel names the provider; accounts where that does not hold, and
// empty ones, are never shared. AccountOwners finds the same as the
// sellers come one by one, naming the first.
func TestSharedAccounts(t *testing.T) {
	channels := Channels{{Channel: cardCh, Account: "bank", OneSellerAnAccount: true}, {Channel: cryptoCh, Account: "bank"},
		{Channel: walletCh, Account: "wallet"}}
	seller := func(id, bank, wallet string) Seller {
		return Seller{ID: id, Accounts: map[string]string{"bank": bank, "wallet": wallet}}
	}
	sellers := []Seller{seller("S1", "B1", "W1"), seller("S2", "B2", "W1"), seller("S3", "B1", ""), seller("S4", "", ""),
		seller("S5", "", ""), seller("S6", "B1", "W2")}
	m := map[string]Seller{}
	for _, s := range sellers {
		m[s.ID] = s
	}
	channels.MarkShared(m)
	want := map[string][]string{"S1": {"S3", "S6"}, "S3": {"S1", "S6"}, "S6": {"S1", "S3"}}
	for id, s := range m {
		if !slices.Equal(s.SharedWith["bank"], want[id]) || s.SharedWith["wallet"] != nil {
			t.Errorf("%s shared with %v, want bank %v", id, s.SharedWith, want[id])
		}
	}
	owners := channels.NewAccountOwners()
	var got []string
	for _, s := range sellers {
		p, other := owners.See(s)
		if other != "" {
			got = append(got, s.ID+"~"+other+"@"+p)
		}
		if _, again := owners.See(s); again != other { // seen again: the same answer
			t.Errorf("%s seen again: shares with %q, first %q", s.ID, again, other)
		}
	}
	if want := []string{"S3~S1@bank", "S6~S1@bank"}; !slices.Equal(got, want) {
		t.Errorf("AccountOwners: %v, want %v", got, want)
	}
	if p, other := (Channels{{Channel: walletCh, Account: "wallet"}}).NewAccountOwners().See(sellers[0]); other != "" {
		t.Errorf("no provider of one seller an account: %s %s", p, other)
	}
}
