package pipeline

import "strings"

// Channel is the payment channel of an order: the source's provider column.
type Channel string

// ChannelSpec is what the core knows of a channel, as data: the package of
// the provider that settles its orders declares it, and cmd lists the
// channels settle knows (Channels). Nothing in the core names a channel.
type ChannelSpec struct {
	// Channel is its name in the source's provider column.
	Channel Channel
	// Account names the seller account its orders are paid to: the key of
	// Seller.Accounts (the name of the provider that holds the account,
	// which need not be the channel's own).
	Account string
	// AccountName says what that account is, for the reason of an order
	// rejected because its seller has none (e.g. "sub_mchid").
	AccountName string
	// CheckAccount, when set, says why a seller's account id cannot be
	// used by the provider that holds it (nil: it can): an order whose
	// seller's id it refuses is rejected with that reason, as one without
	// an account is, rather than stopping a later stage for every seller.
	CheckAccount func(id string) error
	// TxnRequired: its orders settle per provider transaction, so
	// provider_txn_id is required; otherwise it may be NULL or empty.
	TxnRequired bool
	// Unverified: its items start ItemUnverified: the provider must
	// confirm the payment before it is settled (a crypto payment, say).
	Unverified bool
	// LateRefundIgnored, when not empty, is why a late refund of one of its
	// settled orders is ignored rather than clawed back (the provider takes
	// the refund from the seller's own funds, say). Empty: clawed back.
	LateRefundIgnored string
}

// Channels are the channels a run knows, in report order.
type Channels []ChannelSpec

// Spec returns the spec of channel c, and whether c is known.
func (cs Channels) Spec(c Channel) (ChannelSpec, bool) {
	for _, s := range cs {
		if s.Channel == c {
			return s, true
		}
	}
	return ChannelSpec{}, false
}

// Known reports whether c is one of the channels.
func (cs Channels) Known(c Channel) bool {
	_, ok := cs.Spec(c)
	return ok
}

// Names lists the channels for a message: "a, b or c".
func (cs Channels) Names() string {
	names := make([]string, len(cs))
	for i, s := range cs {
		names[i] = string(s.Channel)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
