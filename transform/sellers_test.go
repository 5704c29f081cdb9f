package transform

import (
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
	} {
		got := CheckSeller(pipeline.Order{SellerID: "S1", Channel: tc.ch}, tc.s, tc.known, testChannels)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s %+v known=%v: %q, want %q", tc.ch, tc.s, tc.known, got, tc.want)
		}
	}
}
