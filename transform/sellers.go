package transform

import (
	"fmt"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// CheckSeller returns why an order cannot be paid to its seller's account
// at the provider that pays its channel (the channel's spec in channels
// names it) - none, one that provider cannot use, or one another seller
// has too where an account is one seller's - or "" when it can. known says
// whether the platform knows the seller at all. The transform rejects an
// order of a seller it does not know and holds the others it gives a
// reason for (pipeline.SellerHoldPrefix); the upload stage's seller check
// (pipeline.SellerHoldStage) asks again on every run of the date.
func CheckSeller(o pipeline.Order, s pipeline.Seller, known bool, channels pipeline.Channels) string {
	if !known {
		// Quoted: the sellers query is asked for the id exactly as the
		// order has it, so " S1" is not S1, and the reason must show it.
		return fmt.Sprintf("seller %q is not in the platform's sellers (its sellers query gave no row for it, or rows that disagree)", o.SellerID)
	}
	spec, ok := channels.Spec(o.Channel)
	if !ok {
		return fmt.Sprintf("unknown provider %q", o.Channel)
	}
	if spec.Account == "" {
		return ""
	}
	what := spec.AccountName
	if what == "" {
		what = spec.Account + " account"
	}
	id := s.Account(spec.Account)
	if id == "" {
		return fmt.Sprintf("seller %s has no %s (needed to pay %s orders)", o.SellerID, what, o.Channel)
	}
	if spec.CheckAccount != nil {
		if err := spec.CheckAccount(id); err != nil {
			return fmt.Sprintf("seller %s's %s cannot be used to pay %s orders: %v", o.SellerID, what, o.Channel, err)
		}
	}
	if others := s.SharedWith[spec.Account]; spec.OneSellerAnAccount && len(others) > 0 {
		return fmt.Sprintf("seller %s's %s %q is also %s's in the platform's sellers: an account is one seller's, so no order of either is paid to it until the platform corrects its sellers",
			o.SellerID, what, id, sellerList(others))
	}
	return ""
}

// sellerList names sellers for a reason: "seller B", "sellers B and C",
// "sellers B, C, D and 2 more".
func sellerList(ids []string) string {
	switch n := len(ids); {
	case n == 1:
		return "seller " + ids[0]
	case n <= 3:
		return "sellers " + strings.Join(ids[:n-1], ", ") + " and " + ids[n-1]
	default:
		return fmt.Sprintf("sellers %s and %d more", strings.Join(ids[:3], ", "), n-3)
	}
}
