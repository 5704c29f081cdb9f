package pipeline

import "time"

// ItemState is the state of an item (a settled order) in the ledger. Its
// values are the ledger's names; this is their one home.
type ItemState = string

// The states of an item.
const (
	// ItemUnverified: a payment the provider must confirm before it is
	// settled (a crypto payment, say); only then does it become
	// ItemRecorded and go on to a trade file and a payout.
	ItemUnverified ItemState = "unverified"
	ItemRecorded   ItemState = "recorded" // split, waiting for its provider's work
	ItemUploaded   ItemState = "uploaded" // in a trade file the provider accepted
	ItemPaid       ItemState = "paid"     // its seller's share was paid
	ItemHeld       ItemState = "held"     // waiting, with the reason; a later run tries again
	ItemRejected   ItemState = "rejected" // never paid, with the reason
)

// ReleasedToSeller starts the reason of an item paid by its provider's
// release of the whole transaction to the seller while the commission was
// not collected (a distribution whose line to the platform was closed):
// the only failed payout a person may resolve (settle resolve).
const ReleasedToSeller = "released to the seller"

// SettledOutside starts the reason of an item a person settled with its
// provider outside settle while settle held it (settle resolve --order):
// the provider held nothing of it any more when the person said so, and
// settle never sends anything for it again.
const SettledOutside = "settled outside settle"

// RejectedByPerson starts the reason of an item a person rejected for
// good while settle held it (settle resolve --order --reject): an order
// whose payment its provider answered failed and that will never arrive.
// It is never paid, and no run verifies it again.
const RejectedByPerson = "rejected by a person"

// HeldPrefix starts the reason of an item its provider's stage holds in
// ItemRecorded (a later run looks at it again).
const HeldPrefix = "held: "

// SellerHoldPrefix starts the reason of an item held (ItemHeld) for its
// seller's account at the provider that pays it: none, one that provider
// cannot use, or one another seller has too. Every run of its date reads
// the seller again (SellerHoldStage) and releases the item once the
// platform's sellers give it a usable account; until then nothing is paid
// on it, and the run needs a person.
const SellerHoldPrefix = HeldPrefix + "seller account: "

// RejectedSellerHold starts the reason of an item a person rejected for
// good while it was held for its seller's account (settle resolve
// --seller --reject: the platform will never give the seller one). Its
// payment was never in doubt: nothing asks its provider about it again
// as about an order rejected for a payment that failed.
const RejectedSellerHold = RejectedByPerson + " (held for its seller's account"

// SourceRow is one row of the source query exactly as read, before any
// validation. A nil field was NULL. Amounts stay text so that a value too
// large for int64 is reported, not wrapped.
type SourceRow struct {
	Seq           int64 // 1-based position in the stream, for error messages
	OrderNo       *string
	SellerID      *string
	Provider      *string
	ProviderTxnID *string
	Currency      *string
	AmountMinor   *string
	RefundedMinor *string
	Category      *string
	PaidAt        *time.Time
	ConfirmedAt   *time.Time
	// OtherShard marks a row of another shard's seller, kept in a shard's
	// snapshot only for its keys (OtherShardKeys): never classified, it
	// counts when the transform looks for an order number or a provider
	// transaction that rows share.
	OtherShard bool
}

// OtherShardKeys is what a shard's snapshot keeps of a row of another
// shard's seller: its order number and provider transaction, marked
// OtherShard. ok is false when the row names neither (nothing to share).
func (r SourceRow) OtherShardKeys() (keys SourceRow, ok bool) {
	keys = SourceRow{Seq: r.Seq, OrderNo: r.OrderNo, Provider: r.Provider, ProviderTxnID: r.ProviderTxnID, OtherShard: true}
	return keys, r.OrderNo != nil || (r.ProviderTxnID != nil && *r.ProviderTxnID != "")
}

// Order is a validated source row: one order whose escrow was released on the
// business date. Amounts are minor units of Currency; Refunded <= Amount.
type Order struct {
	Seq           int64 // position of its row in the run's snapshot
	OrderNo       string
	SellerID      string
	Channel       Channel
	ProviderTxnID string
	Currency      Currency
	Amount        int64 // gross, minor units
	Refunded      int64 // refunds netted before commission, minor units
	Category      string
	PaidAt        time.Time
	ConfirmedAt   time.Time
}

// Split is an order with its commission computed. Invariant:
// Amount = Refunded + Commission + SellerShare.
type Split struct {
	Order
	Rule        string // identifies the rule that produced it, e.g. "rules.csv:4"
	Commission  int64  // platform commission, minor units
	SellerShare int64  // what the seller is owed, minor units
	// Unverified: its item starts ItemUnverified, for the provider to
	// confirm the payment first (its channel's spec says so); otherwise it
	// starts ItemRecorded.
	Unverified bool
	// TxnOnce: its provider transaction settles once, ever (its channel
	// settles per provider transaction: the spec's TxnRequired); no other
	// order may name it.
	TxnOnce bool
	// SellerHold, when set, holds the item for its seller's account: it
	// starts ItemHeld, its reason SellerHoldPrefix and this (the seller
	// check's reason), instead of ItemUnverified or ItemRecorded.
	SellerHold string
	// Held: read from the ledger, the item is in its state with a hold
	// as its reason (HeldPrefix) from an earlier run; a stage that
	// settles it after all says so (the reports showed the old hold).
	Held bool
}

// Balanced reports whether the split conserves the order's gross amount.
func (s Split) Balanced() bool {
	sum, err := Add(s.Refunded, s.Commission)
	if err != nil {
		return false
	}
	sum, err = Add(sum, s.SellerShare)
	return err == nil && sum == s.Amount && s.Commission >= 0 && s.SellerShare >= 0
}

// Reject is a source row that will not be settled, with the reason. Whatever
// could be read of the row is kept so that the reports can show it.
type Reject struct {
	Seq      int64
	OrderNo  string
	SellerID string
	Provider string
	Currency string
	Amount   string
	Refunded string
	Reason   string
}

// OrderLine is one row of the orders report: an order considered on a date,
// settled or rejected.
type OrderLine struct {
	OrderNo     string `csv:"order_no"`
	SellerID    string `csv:"seller_id"`
	Provider    string `csv:"provider"`
	Currency    string `csv:"currency"`
	Gross       string `csv:"gross_minor"` // text: a rejected row keeps what it said
	Refunded    string `csv:"refunded_minor"`
	Commission  string `csv:"commission_minor"`
	Seller      string `csv:"seller_minor"`
	Action      string `csv:"action"` // settle | rejected
	State       string `csv:"state"`
	Reason      string `csv:"reason"`
	Rule        string `csv:"rule"`
	PayoutKey   string `csv:"payout_key"`
	ProviderRef string `csv:"provider_ref"`
	Shard       string `csv:"shard"`
	// Balanced is the order's conservation check: gross = refunded +
	// commission + seller share for a settled order; for a late refund,
	// refund = commission given back + seller share taken back; empty for
	// a rejected row (nothing settled).
	Balanced string `csv:"balanced"`
}

// Seller is a seller as the platform describes it, with its accounts at
// the providers.
type Seller struct {
	ID         string
	Name       string
	EntityType string // Corporate | Individual
	Country    string // ISO 3166 alpha-3
	// Accounts are the seller's accounts (ids) at the providers, by the
	// provider's name (ChannelSpec.Account). A provider absent, or an empty
	// id, means the seller has no account there.
	Accounts map[string]string
	// SharedWith names, by provider, the other sellers of the run with
	// the same account there, where an account is one seller's
	// (Channels.MarkShared): the seller's orders paid to it are held.
	SharedWith map[string][]string
	// CarriedOnly: the seller was read for a balance carried from an
	// earlier date (CarriedSellers), the run's rows naming none of its
	// orders. Recorded with the run's sellers, not read back.
	CarriedOnly bool
}

// Account returns the seller's account at provider; "" when it has none.
func (s Seller) Account(provider string) string { return s.Accounts[provider] }

// TradeRow is one row of a trade-detail file (columns assumed by us, listed
// in the README): amounts are decimal strings in the currency's major unit.
type TradeRow struct {
	OrderNo      string `csv:"order_no"`
	TradeType    string `csv:"trade_type"` // SALE | REFUND
	ProductType  string `csv:"product_type"`
	Currency     string `csv:"currency"`
	Amount       string `csv:"amount"`
	Commission   string `csv:"commission"`
	SellerAmount string `csv:"seller_amount"`
	TradeTime    string `csv:"trade_time"` // RFC 3339, UTC
}

// TradeFile is one trade-detail file: one seller, one currency, one date,
// filed with the provider that pays the seller from it.
type TradeFile struct {
	ID               int64
	RunID            int64
	Date             Date
	SellerID         string // the platform's
	ProviderSellerID string // the seller's id at the provider, in the file name
	Currency         Currency
	Attempt          int
	RequestNo        string
	Name             string
	SHA256           string
	Rows             int
	Bytes            int64
	SellerMinor      int64 // what the file says the seller is owed
	Items            int   // orders in the file (a refunded order has two rows)
	Status           string
	ErrorURL         string
	Reason           string
	// Uploaded is when its upload was last recorded succeeded (zero: not
	// uploaded yet).
	Uploaded time.Time
}

// Payable is what a run owes one seller in one currency: the sum of the
// seller shares of its items in one state.
type Payable struct {
	SellerID string
	Currency Currency
	Amount   int64 // minor units
	Items    int64
}

// Binding is a seller's account binding at a provider (the seller's
// consent to be paid through the platform's account) as last recorded.
type Binding struct {
	SellerID         string
	ProviderSellerID string // the seller's id at the provider
	Status           string // PENDING, ACTIVE, FROZEN, REJECTED
	RequestNo        string
	Source           string // "query", "webhook" or "bind"
}

// PayoutLine is one row of the payouts report: one attempt at a side effect,
// with the path of states its history went through (planned>sent>unknown>
// succeeded: an answer lost, then resolved by query) and how many times the
// request was sent.
type PayoutLine struct {
	Kind        string `csv:"kind"`
	Subject     string `csv:"subject"`
	Attempt     int    `csv:"attempt"`
	Key         string `csv:"key"`
	Currency    string `csv:"currency"`
	Amount      int64  `csv:"amount_minor"`
	State       string `csv:"state"`
	Path        string `csv:"path"`
	Sends       int    `csv:"sends"`
	ProviderRef string `csv:"provider_ref"`
	LastError   string `csv:"last_error"`
}

// SellerLine is one row of the sellers report: a seller's date in one
// currency. Orders, Gross, Refunded and Commission are those of the items a
// provider did not reject, so Gross - Refunded - Commission = Payable in
// every row; the items a provider rejected are counted apart
// (Rejected, RejectedGross). Payable (the date's items) + CarriedIn
// (the balance carried from earlier dates) + Clawback (late refunds taken
// back that day, <= 0) = Paid (sent for the date) + Held (the balance
// carried forward: held payouts and clawbacks not netted yet) + Unsettled
// (not decided yet).
type SellerLine struct {
	SellerID      string `csv:"seller_id"`
	Currency      string `csv:"currency"`
	Orders        int64  `csv:"orders"`
	Gross         int64  `csv:"gross_minor"`
	Refunded      int64  `csv:"refunded_minor"`
	Commission    int64  `csv:"commission_minor"`
	Payable       int64  `csv:"payable_minor"`
	CarriedIn     int64  `csv:"carried_in_minor"`
	Clawback      int64  `csv:"clawback_minor"`
	Paid          int64  `csv:"paid_minor"`
	Held          int64  `csv:"carried_forward_minor"`
	Unsettled     int64  `csv:"unsettled_minor"`
	Rejected      int64  `csv:"rejected_orders"`
	RejectedGross int64  `csv:"rejected_gross_minor"`
	Balanced      bool   `csv:"balanced"`
}

// SummaryLine is one row of the summary report: a channel and currency of
// the day. Gross = Refunded + Commission + Seller, and every minor unit of
// Seller is in exactly one of Paid, Carried, Held, Unverified,
// RejectedByProvider and InProgress; Balanced tests both sums. The figures
// are the date's own: an item carried on the date stays in Carried when a
// later date's payout pays it, and PaidLater (part of Carried) with
// PaidLaterOn (the dates of those payouts) say so. SkippedOrders and
// Skipped (part of Unverified and InProgress) are the orders, and their
// seller share, of a channel the date's run left out on purpose (the
// operator's --skip-channel): waiting, and not being paid.
type SummaryLine struct {
	Channel            string `csv:"channel"`
	Currency           string `csv:"currency"`
	Orders             int64  `csv:"orders"`
	Gross              int64  `csv:"gross_minor"`
	Refunded           int64  `csv:"refunded_minor"`
	Commission         int64  `csv:"commission_minor"`
	Seller             int64  `csv:"seller_minor"`
	Paid               int64  `csv:"paid_minor"`                 // paid by the date's own payouts
	Carried            int64  `csv:"carried_minor"`              // carried into the sellers' balances on the date
	Held               int64  `csv:"held_minor"`                 // held: a payment confirming, a refused file, no receiver
	Unverified         int64  `csv:"unverified_minor"`           // items whose payment is not verified yet
	RejectedByProvider int64  `csv:"rejected_by_provider_minor"` // items a provider rejected: never paid
	InProgress         int64  `csv:"in_progress_minor"`          // recorded or uploaded, no outcome yet
	PaidLater          int64  `csv:"paid_later_minor"`           // of Carried: paid since by a later date's payout
	PaidLaterOn        string `csv:"paid_later_on"`              // the dates of those payouts
	Rejected           int64  `csv:"rejected_orders"`            // source rows rejected, or items rejected by a provider
	Balanced           bool   `csv:"balanced"`
	SkippedOrders      int64  `csv:"skipped_orders"` // orders of a channel left out on purpose (--skip-channel)
	Skipped            int64  `csv:"skipped_minor"`  // their seller share: part of Unverified and InProgress
}

// Accounted is the sum of the columns the seller share is split into.
func (s SummaryLine) Accounted() int64 {
	return s.Paid + s.Carried + s.Held + s.Unverified + s.RejectedByProvider + s.InProgress
}
