package transform

import (
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// CheckSeller returns why an order cannot be settled for want of its
// seller's identity at the provider that settles it, or "" when it can.
// known says whether the platform knows the seller at all.
func CheckSeller(o pipeline.Order, s pipeline.Seller, known bool) string {
	if !known {
		return fmt.Sprintf("seller %s is not in the platform's sellers", o.SellerID)
	}
	switch o.Channel {
	case pipeline.ChannelInfiniaPay, pipeline.ChannelPayProtocol:
		if s.InfiniaID == "" {
			return fmt.Sprintf("seller %s has no Infinia Pay seller id (needed to pay %s orders)", o.SellerID, o.Channel)
		}
	case pipeline.ChannelWeChatPay:
		if s.WeChatSubMchID == "" {
			return fmt.Sprintf("seller %s has no WeChat Pay sub_mchid", o.SellerID)
		}
	}
	return ""
}
