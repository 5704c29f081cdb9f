package infiniapay

import (
	"fmt"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// Deterministic keys and names of Infinia's requests and files: the same
// date, seller, currency and attempt always give the same key, so a re-run
// re-uses what was sent.

// TradeRequestNo is the deterministic requestNo of a trade-detail upload:
// the same date, seller, currency and attempt always give the same one.
func TradeRequestNo(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	return fmt.Sprintf("TDU-%s-%s-%d", d.Compact(), pipeline.ShortHash("TD", sellerID, string(cur)), attempt)
}

// A requestNo's hash is 48 bits of its seller and currency, so two
// sellers' can be the same (a pair is found in a minute; among millions
// of sellers and currencies one is likely), on every date both are paid
// in it. The ledger refuses the second of them (pipeline.ErrKeyTaken):
// that seller's trade file or revenue share is recorded under its
// requestNo "taken" instead - the same shape, its hash salted - before
// anything is sent, and keeps it (its effect and trade file hold it).
// Every other seller keeps the requestNo it always had. Before, that
// seller's orders of every such date waited in no file, or its revenue
// share was carried, for a person who had no way to pay them.
const takenSalt = "taken"

// TradeRequestNoTaken is the requestNo of a trade-detail upload whose
// TradeRequestNo another seller's file holds already (takenSalt).
func TradeRequestNoTaken(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	return fmt.Sprintf("TDU-%s-%s-%d", d.Compact(), pipeline.ShortHash("TD", sellerID, string(cur), takenSalt), attempt)
}

// TradeFileName is the file name Infinia expects (assumed):
// TD_<platformId>_<sellerId>_<currency>_<YYYYMMDD>_<requestNo>.csv, with the
// Infinia seller id. The ids must be letters, digits and "-" so that the
// name splits back unambiguously.
func TradeFileName(platformID, infiniaID string, cur pipeline.Currency, d pipeline.Date, requestNo string) (string, error) {
	for _, f := range []struct{ name, v string }{{"platformId", platformID}, {"sellerId", infiniaID}, {"requestNo", requestNo}} {
		if !nameSafe(f.v) {
			return "", fmt.Errorf("trade file name: %s %q: want letters, digits and -", f.name, f.v)
		}
	}
	if !cur.Valid() {
		return "", fmt.Errorf("trade file name: unknown currency %q", cur)
	}
	return fmt.Sprintf("TD_%s_%s_%s_%s_%s.csv", platformID, infiniaID, cur, d.Compact(), requestNo), nil
}

// CheckSellerID says why an Infinia seller id cannot be used (nil: it
// can): it names the seller's trade files, so it must be 1 to 64 letters,
// digits and "-". The channels paid to an Infinia account check their
// sellers' ids with it at transform (pipeline.ChannelSpec.CheckAccount),
// so that one seller's id rejects that seller's orders, not every file of
// the day.
func CheckSellerID(id string) error {
	if !nameSafe(id) {
		return fmt.Errorf("%q is not 1 to 64 letters, digits and - (it names the seller's trade files)", clip(id))
	}
	return nil
}

func nameSafe(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}

// RevenueShareRequestNo is the deterministic requestNo of a revenue share.
func RevenueShareRequestNo(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	return fmt.Sprintf("RS-%s-%s-%d", d.Compact(), pipeline.ShortHash("RS", sellerID, string(cur)), attempt)
}

// RevenueShareRequestNoTaken is the requestNo of a revenue share whose
// RevenueShareRequestNo another seller's holds already (takenSalt).
func RevenueShareRequestNoTaken(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	return fmt.Sprintf("RS-%s-%s-%d", d.Compact(), pipeline.ShortHash("RS", sellerID, string(cur), takenSalt), attempt)
}

// BindingRequestNo is the requestNo of a binding request or status query
// made on date d.
func BindingRequestNo(kind string, d pipeline.Date, sellerID string) string {
	return fmt.Sprintf("%s-%s-%s", kind, d.Compact(), pipeline.ShortHash(kind, sellerID))
}

// RevenueShareSubject names the logical payout of a seller's share in a
// currency for a date (the effect's subject):
// "RS/<YYYYMMDD>/<sellerID>/<currency>". The ledger's reports read this
// shape (the seller is its third part).
func RevenueShareSubject(d pipeline.Date, sellerID string, cur pipeline.Currency) string {
	return fmt.Sprintf("RS/%s/%s/%s", d.Compact(), sellerID, cur)
}

// revenueSharePrefix begins the subject of every revenue share of date d.
func revenueSharePrefix(d pipeline.Date) string {
	return "RS/" + d.Compact() + "/"
}

// UploadSubject names the logical upload of a seller's trade details in a
// currency for a date.
// Each file of the date, seller and currency is its own subject (a later
// one carries items verified since): the attempt number after the first.
func UploadSubject(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	if attempt <= 1 {
		return fmt.Sprintf("TD/%s/%s/%s", d.Compact(), sellerID, cur)
	}
	return fmt.Sprintf("TD/%s/%s/%s/%d", d.Compact(), sellerID, cur, attempt)
}

// subjectSeller returns the seller of a "KIND/DATE/SELLER/CURRENCY" subject.
func subjectSeller(subject string) string {
	parts := strings.Split(subject, "/")
	if len(parts) != 4 {
		return ""
	}
	return parts[2]
}
