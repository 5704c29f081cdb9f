package ledger_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/settlekit/settle/pipeline"
)

// The ledger's tests play a provider that files items and pays each
// seller's share by one request per seller, currency and date, as Infinia
// Pay does (load/infiniapay, which the ledger never imports): its effect
// kind, channels and keys as the ledger's queries read them (kind
// 'revenue_share', subjects "RS/<YYYYMMDD>/<seller>/<currency>").
const kindRevenueShare = "revenue_share"

// shareChannels are the channels whose items the revenue shares pay.
var shareChannels = []pipeline.Channel{chInfinia, chPayProtocol}

func keyHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return strings.ToUpper(hex.EncodeToString(h[:6]))
}

// shareSubject names a seller's revenue share in a currency for a date.
func shareSubject(d pipeline.Date, sellerID string, cur pipeline.Currency) string {
	return fmt.Sprintf("RS/%s/%s/%s", d.Compact(), sellerID, cur)
}

// shareKey is the requestNo of an attempt at a revenue share.
func shareKey(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	return fmt.Sprintf("RS-%s-%s-%d", d.Compact(), keyHash("RS", sellerID, string(cur)), attempt)
}

// tradeKey is the requestNo of a trade file.
func tradeKey(d pipeline.Date, sellerID string, cur pipeline.Currency, attempt int) string {
	return fmt.Sprintf("TDU-%s-%s-%d", d.Compact(), keyHash("TD", sellerID, string(cur)), attempt)
}
