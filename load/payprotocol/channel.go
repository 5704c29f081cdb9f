package payprotocol

import "github.com/settlekit/settle/pipeline"

// Channel is the channel of the crypto orders paid into the platform's Pay
// Protocol sub-contract address: the source's provider column.
const Channel pipeline.Channel = "payprotocol"

// paidThrough is the key, in pipeline.Seller.Accounts, of the account its
// seller's share is paid to: the seller's Infinia seller id (Infinia's
// SellerAccount; a provider package imports no other).
const paidThrough = "infiniapay"

// onlyDeclared is why a seller's share of a Pay Protocol order cannot grow
// once settled: it is paid by Infinia revenue sharing, out of what the
// trade files declared (pipeline.ChannelSpec.OnlyDeclared).
const onlyDeclared = "paid by Infinia Pay revenue sharing, which pays a seller only out of what its accepted trade files declared the seller's (less what it paid): a share grown since was declared to it by no file"

// ChannelSpec is what the core knows of Channel: each order is verified
// with Pay Protocol's payment detail query (provider_txn_id, its
// out_trade_no, required) before it settles, so its items start
// unverified; the seller's share is paid like an Infinia order, by revenue
// sharing to the seller's Infinia account, and a late refund is clawed
// back the same way.
func ChannelSpec() pipeline.ChannelSpec {
	return pipeline.ChannelSpec{Channel: Channel, Account: paidThrough, AccountName: "Infinia Pay seller id", TxnRequired: true, Unverified: true,
		OneSellerAnAccount: true, OnlyDeclared: onlyDeclared}
}
