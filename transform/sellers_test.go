package transform

import (
	"strings"
	"testing"

	"github.com/settlekit/settle/pipeline"
)

func TestCheckSeller(t *testing.T) {
	full := pipeline.Seller{ID: "S1", InfiniaID: "INF1", WeChatSubMchID: "1900"}
	for _, tc := range []struct {
		ch    pipeline.Channel
		s     pipeline.Seller
		known bool
		want  string
	}{
		{pipeline.ChannelInfiniaPay, full, true, ""},
		{pipeline.ChannelWeChatPay, full, true, ""},
		{pipeline.ChannelPayProtocol, full, true, ""},
		{pipeline.ChannelInfiniaPay, full, false, "not in the platform's sellers"},
		{pipeline.ChannelInfiniaPay, pipeline.Seller{ID: "S1", WeChatSubMchID: "1900"}, true, "no Infinia Pay seller id"},
		{pipeline.ChannelPayProtocol, pipeline.Seller{ID: "S1", WeChatSubMchID: "1900"}, true, "no Infinia Pay seller id"},
		{pipeline.ChannelWeChatPay, pipeline.Seller{ID: "S1", InfiniaID: "INF1"}, true, "no WeChat Pay sub_mchid"},
	} {
		got := CheckSeller(pipeline.Order{SellerID: "S1", Channel: tc.ch}, tc.s, tc.known)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s %+v known=%v: %q, want %q", tc.ch, tc.s, tc.known, got, tc.want)
		}
	}
}
