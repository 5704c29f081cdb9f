package main

import (
	"slices"
	"testing"

	"github.com/settlekit/settle/extract"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/payprotocol"
	"github.com/settlekit/settle/pipeline"
	"github.com/settlekit/settle/pipeline/ledger"
)

// Every channel settle knows is listed once, with what configures its
// provider, and is paid to an account that both the platform's sellers
// query and the ledger carry: a channel whose sellers' accounts were
// dropped on the way would reject every order.
func TestKnownChannelsAreConsistent(t *testing.T) {
	t.Parallel()
	seen := map[pipeline.Channel]bool{}
	for _, k := range knownChannels() {
		ch := k.spec.Channel
		if ch == "" || seen[ch] {
			t.Errorf("channel %q empty or listed twice", ch)
		}
		seen[ch] = true
		if k.flag == "" || k.configured == nil {
			t.Errorf("%s: no flag or configured", ch)
		}
		if !slices.Contains(extract.SellerAccounts(), k.spec.Account) || !slices.Contains(ledger.SellerAccounts(), k.spec.Account) {
			t.Errorf("%s is paid to %q: extract reads %v, the ledger keeps %v", ch, k.spec.Account, extract.SellerAccounts(), ledger.SellerAccounts())
		}
		if channelFlag(ch) != k.flag {
			t.Errorf("%s: channelFlag %q, want %q", ch, channelFlag(ch), k.flag)
		}
	}
	// Infinia pays Pay Protocol's orders (its provider settles them both):
	// to the seller's Infinia account.
	if payprotocol.ChannelSpec().Account != infiniapay.SellerAccount {
		t.Errorf("payprotocol is paid to %q, want Infinia's %q", payprotocol.ChannelSpec().Account, infiniapay.SellerAccount)
	}
	if len(channelSpecs()) != len(seen) {
		t.Errorf("channelSpecs: %d, want %d", len(channelSpecs()), len(seen))
	}
	if got := (&runOptions{}).configured(); len(got) != len(seen) || slices.Contains(mapValues(got), true) {
		t.Errorf("nothing configured: %v", got)
	}
	if got := (&runOptions{wechat: &weChatSetup{}}).configured(); !got["wechatpay"] || got["infiniapay"] || got["payprotocol"] {
		t.Errorf("WeChat Pay configured: %v", got)
	}
}

func mapValues(m map[pipeline.Channel]bool) []bool {
	var out []bool
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
