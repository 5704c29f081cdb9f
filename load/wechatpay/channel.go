package wechatpay

import (
	"fmt"

	"github.com/settlekit/settle/pipeline"
)

// Channel is the channel of the orders whose payment is frozen in the
// seller's WeChat Pay sub-merchant account: the source's provider column.
const Channel pipeline.Channel = "wechatpay"

// DistributionCurrency is the one currency WeChat Pay Global's funds
// distribution publishes for a receiver line (receivers[].currency: "CNY
// today"), the currency its remaining-amount answer reports: an order in
// another is not one WeChat Pay distributes (StageConfig.Currencies).
const DistributionCurrency pipeline.Currency = "CNY"

// SellerAccount is the key of a seller's sub_mchid in
// pipeline.Seller.Accounts.
const SellerAccount = "wechatpay"

// ChannelSpec is what the core knows of Channel: each order settles its
// own transaction (provider_txn_id required) at the seller's sub-merchant
// account; a late refund comes out of the sub-merchant's own funds, so
// nothing is clawed back.
func ChannelSpec() pipeline.ChannelSpec {
	return pipeline.ChannelSpec{Channel: Channel, Account: SellerAccount, AccountName: "WeChat Pay sub_mchid", TxnRequired: true,
		LateRefundIgnored: "paid through WeChat Pay: the refund comes out of the sub-merchant's own funds there", CheckAccount: CheckSubMchID}
}

// CheckSubMchID says why id cannot be a sub-merchant's sub_mchid in
// WeChat Pay's requests (1 to 64 characters of [0-9A-Za-z_-]), or nil: a
// seller with such an id has its orders rejected at transform, not held
// at every distribute.
func CheckSubMchID(id string) error {
	if id == "" || !validAccount(id) {
		return fmt.Errorf("%q is not 1 to 64 characters of [0-9A-Za-z_-]", clip(id))
	}
	return nil
}
