package transform

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

func TestCheckSeller(t *testing.T) {
	full := pipeline.Seller{ID: "S1", Accounts: map[string]string{"infiniapay": "INF1", "wechatpay": "1900"}}
	for _, tc := range []struct {
		ch    pipeline.Channel
		s     pipeline.Seller
		known bool
		want  string
	}{
		{chInfinia, full, true, ""},
		{chWeChat, full, true, ""},
		{chPayProtocol, full, true, ""},
		{chInfinia, full, false, "not in the platform's sellers"},
		{chInfinia, pipeline.Seller{ID: "S1", Accounts: map[string]string{"wechatpay": "1900"}}, true, "no Infinia Pay seller id"},
		{chPayProtocol, pipeline.Seller{ID: "S1", Accounts: map[string]string{"wechatpay": "1900"}}, true, "no Infinia Pay seller id"},
		{chWeChat, pipeline.Seller{ID: "S1", Accounts: map[string]string{"infiniapay": "INF1"}}, true, "no WeChat Pay sub_mchid"},
		{chWeChat, pipeline.Seller{ID: "S1", Accounts: map[string]string{"wechatpay": ""}}, true, "no WeChat Pay sub_mchid (needed to pay wechatpay orders)"},
		{"alipay", full, true, `unknown provider "alipay"`},
		// The provider that holds the account refuses its id: the order is
		// rejected with its word; a channel without a check takes any id.
		{chInfinia, pipeline.Seller{ID: "S1", Accounts: map[string]string{"infiniapay": "INF_1"}}, true,
			`seller S1's Infinia Pay seller id cannot be used to pay infiniapay orders: "INF_1" is not ours`},
		{chPayProtocol, pipeline.Seller{ID: "S1", Accounts: map[string]string{"infiniapay": "INF_1"}}, true, `"INF_1" is not ours`},
		{chWeChat, pipeline.Seller{ID: "S1", Accounts: map[string]string{"wechatpay": "19_00"}}, true, ""},
	} {
		channels := slices.Clone(testChannels)
		for i := range channels {
			if channels[i].Account == "infiniapay" {
				channels[i].CheckAccount = func(id string) error {
					if strings.Contains(id, "_") {
						return fmt.Errorf("%q is not ours", id)
					}
					return nil
				}
			}
		}
		got := CheckSeller(pipeline.Order{SellerID: "S1", Channel: tc.ch}, tc.s, tc.known, channels)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s %+v known=%v: %q, want %q", tc.ch, tc.s, tc.known, got, tc.want)
		}
	}
}

// A seller id with spaces around it is looked up as it is, and the reason
// shows them: "seller   S1  is not in the platform's sellers" left the
// reader of orders.csv looking for a seller S1 the platform has (found by
// an adversarial data review).
func TestCheckSellerQuotesAnUnknownSellerID(t *testing.T) {
	got := CheckSeller(pipeline.Order{SellerID: "  S1 ", Channel: chInfinia}, pipeline.Seller{}, false, testChannels)
	if want := `seller "  S1 " is not in the platform's sellers`; !strings.Contains(got, want) {
		t.Errorf("%q, want it to contain %q", got, want)
	}
}

// A seller whose Infinia id another seller of the run has too
// (SharedWith, where an account is one seller's): its orders paid to that
// account are rejected naming the others; a WeChat order goes on.
func TestCheckSellerRejectsAnAccountSharedWhereItIsOneSellers(t *testing.T) {
	channels := slices.Clone(testChannels)
	for i := range channels {
		channels[i].OneSellerAnAccount = channels[i].Account == "infiniapay"
	}
	s := pipeline.Seller{ID: "S1", Accounts: map[string]string{"infiniapay": "INF1", "wechatpay": "1900"},
		SharedWith: map[string][]string{"infiniapay": {"S2", "S3", "S4", "S5", "S6"}, "wechatpay": {"S9"}}}
	for ch, want := range map[pipeline.Channel]string{
		chInfinia:     `seller S1's Infinia Pay seller id "INF1" is also sellers S2, S3, S4 and 2 more's in the platform's sellers`,
		chPayProtocol: "no order of either is paid to it",
		chWeChat:      "",
	} {
		if got := CheckSeller(pipeline.Order{SellerID: "S1", Channel: ch}, s, true, channels); (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", ch, got, want)
		}
	}
	s.SharedWith["infiniapay"] = []string{"S2"}
	if got := CheckSeller(pipeline.Order{SellerID: "S1", Channel: chInfinia}, s, true, channels); !strings.Contains(got, `"INF1" is also seller S2's`) {
		t.Errorf("one other: %q", got)
	}
	if got := CheckSeller(pipeline.Order{SellerID: "S1", Channel: chInfinia}, s, true, testChannels); got != "" {
		t.Errorf("an account that may be shared: %q", got)
	}
}
