package pipeline

import (
	"slices"
	"strings"
)

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
	// held because its seller has none (e.g. "sub_mchid").
	AccountName string
	// CheckAccount, when set, says why a seller's account id cannot be
	// used by the provider that holds it (nil: it can): an order whose
	// seller's id it refuses is held with that reason, as one without an
	// account is (SellerHoldPrefix), rather than stopping a later stage for
	// every seller.
	CheckAccount func(id string) error
	// OneSellerAnAccount: an account at the provider that holds it is one
	// seller's (what is paid to it is that seller's), so two sellers with
	// the same account there are bad data: their orders of the channel
	// are held (SharedWith, SellerHoldPrefix), never paid to an account
	// that may not be theirs.
	OneSellerAnAccount bool
	// TxnRequired: its orders settle per provider transaction, so
	// provider_txn_id is required; otherwise it may be NULL or empty.
	TxnRequired bool
	// CheckTxn, when set, says why a provider_txn_id cannot be one of the
	// provider's transaction ids (nil: it can): the provider publishes
	// their characters and length, and the id goes as it is into its
	// requests. An order whose id it refuses is rejected at transform
	// with that reason, as any bad value is, rather than recorded and
	// held at every later run with nothing sent for it.
	CheckTxn func(id string) error
	// Unverified: its items start ItemUnverified: the provider must
	// confirm the payment before it is settled (a crypto payment, say).
	Unverified bool
	// LateRefundIgnored, when not empty, is why a late refund of one of its
	// settled orders is ignored rather than clawed back (the provider takes
	// the refund from the seller's own funds, say). Empty: clawed back.
	LateRefundIgnored string
	// OnlyDeclared, when not empty, is why the provider pays a seller no
	// more than what the channel's uploads declared of the seller's shares
	// (less what it paid): an order's share grown past what its upload
	// declared (a reprice that lowers a commission) cannot be paid by it,
	// and its entry would hold the seller's every later payout short. A
	// reprice that would do so is refused whole, naming the orders (a
	// share that grows back up to what was declared is recorded). Empty:
	// the provider pays what it is asked.
	OnlyDeclared string
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

// oneSellerProviders are the providers whose accounts the channels pay as
// one seller's (ChannelSpec.OneSellerAnAccount), each once, in order.
func (cs Channels) oneSellerProviders() []string {
	var out []string
	for _, s := range cs {
		if s.OneSellerAnAccount && s.Account != "" && !slices.Contains(out, s.Account) {
			out = append(out, s.Account)
		}
	}
	return out
}

// MarkShared sets, in each seller of sellers whose account at a provider
// the channels pay as one seller's is another seller's of sellers too,
// SharedWith: the other sellers with that account, by provider.
func (cs Channels) MarkShared(sellers map[string]Seller) {
	for _, provider := range cs.oneSellerProviders() {
		owners := map[string][]string{}
		for id, s := range sellers {
			if acc := s.Account(provider); acc != "" {
				owners[acc] = append(owners[acc], id)
			}
		}
		for _, ids := range owners {
			if len(ids) < 2 {
				continue
			}
			slices.Sort(ids)
			for _, id := range ids {
				s := sellers[id]
				if s.SharedWith == nil {
					s.SharedWith = map[string][]string{}
				}
				s.SharedWith[provider] = slices.DeleteFunc(slices.Clone(ids), func(o string) bool { return o == id })
				sellers[id] = s
			}
		}
	}
}

// AccountOwners finds, among sellers seen one after another, two with the
// same account at a provider the channels pay as one seller's: what a
// pass that meets the day's sellers as they come checks, where MarkShared
// needs them all.
type AccountOwners struct {
	providers []string
	owner     []map[string]string // by provider's index: account -> first seller seen with it
}

// NewAccountOwners returns an empty AccountOwners for the channels.
func (cs Channels) NewAccountOwners() *AccountOwners {
	a := &AccountOwners{providers: cs.oneSellerProviders()}
	a.owner = make([]map[string]string, len(a.providers))
	for i := range a.owner {
		a.owner[i] = map[string]string{}
	}
	return a
}

// See records s and returns a provider and the seller seen before s with
// the same account there ("", "" when none).
func (a *AccountOwners) See(s Seller) (provider, other string) {
	for i, p := range a.providers {
		acc := s.Account(p)
		if acc == "" {
			continue
		}
		if o, ok := a.owner[i][acc]; !ok {
			a.owner[i][acc] = s.ID
		} else if o != s.ID {
			return p, o
		}
	}
	return "", ""
}
