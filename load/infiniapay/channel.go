package infiniapay

import "github.com/settlekit/settle/pipeline"

// Channel is the channel of the orders paid into the platform's Infinia
// Pay account: the source's provider column.
const Channel pipeline.Channel = "infiniapay"

// SellerAccount is the key of a seller's Infinia seller id in
// pipeline.Seller.Accounts: the account revenue shares pay.
const SellerAccount = "infiniapay"

// OnlyDeclared is why a seller's share Infinia pays cannot grow after
// its trade files were accepted (pipeline.ChannelSpec.OnlyDeclared).
const OnlyDeclared = "Infinia Pay pays a seller's revenue share only out of what its accepted trade files declared the seller's (less what it paid): a share grown since was declared to it by no file"

// ChannelSpec is what the core knows of Channel: its seller's share is
// paid by revenue sharing to the seller's Infinia account; the order needs
// no provider transaction id; a late refund is clawed back from the
// seller's next revenue share. A seller id that cannot name a trade file
// (CheckSellerID), or that another seller of the run has too (an Infinia
// account is one seller's), rejects the seller's orders.
func ChannelSpec() pipeline.ChannelSpec {
	return pipeline.ChannelSpec{Channel: Channel, Account: SellerAccount, AccountName: "Infinia Pay seller id", CheckAccount: CheckSellerID,
		OneSellerAnAccount: true, OnlyDeclared: OnlyDeclared}
}
