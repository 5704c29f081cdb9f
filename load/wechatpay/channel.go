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
		LateRefundIgnored: "paid through WeChat Pay: the refund comes out of the sub-merchant's own funds there", CheckAccount: CheckSubMchID,
		CheckTxn: CheckTransactionID}
}

// CheckTransactionID says why id cannot be a WeChat Pay transaction_id (1
// to MaxTransactionID characters of [0-9A-Za-z_-], as every request about
// it checks: checkTxnKeys), or nil. An order naming such a transaction is
// rejected at transform (pipeline.ChannelSpec.CheckTxn): it was recorded,
// then held at every distribute and reported a mismatch at every
// reconcile, nothing ever sent for it, until a person resolved it.
func CheckTransactionID(id string) error {
	if id == "" || len(id) > MaxTransactionID || !tokenChars(id) {
		return fmt.Errorf("%q is not 1 to %d characters of [0-9A-Za-z_-]", clip(id), MaxTransactionID)
	}
	return nil
}

// CheckSubMchID says why id cannot be a sub-merchant's sub_mchid in
// WeChat Pay's requests (1 to MaxSubMchID characters of [0-9A-Za-z_-],
// as every request checks it: checkTxnKeys), or nil: a seller with such an
// id has its orders held for its account at transform
// (pipeline.ChannelSpec.CheckAccount), not sent to WeChat Pay and held at
// every distribute with the advice to settle them by hand. It took 64
// characters (a receiver account's limit), so a sub_mchid of 33 to 64
// passed the transform and was refused at every request.
func CheckSubMchID(id string) error {
	if id == "" || len(id) > MaxSubMchID || !tokenChars(id) {
		return fmt.Errorf("%q is not 1 to %d characters of [0-9A-Za-z_-]", clip(id), MaxSubMchID)
	}
	return nil
}
