package transform

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// Validate turns a raw source row into an Order, or into a Reject saying why
// the row will not be settled: the first problem found, checking the columns
// in the order of the source query, in lower case and naming the column.
//
// Required (a NULL or empty value is a reject): order_no, seller_id,
// provider, currency, amount_minor, paid_at, confirmed_at, and
// provider_txn_id for a channel whose spec says so (it settles per provider
// transaction). A NULL refunded_minor is 0, a NULL category is "", a NULL
// provider_txn_id of another channel's order is "".
//
// Nothing is trimmed or guessed: order_no, provider, currency and
// provider_txn_id with leading or trailing space are rejects (a padded
// seller_id or category is one where a rule names it trimmed: SplitOrder);
// provider must be
// one of channels and currency a known currency, spelt exactly; amounts are
// base-10 integers, 0 < amount_minor <= MaxAmountMinor and
// 0 <= refunded_minor <= amount_minor; order_no, seller_id and
// provider_txn_id are at most pipeline.MaxIdentifier bytes of UTF-8 without control
// characters, and category is UTF-8 (neither may hold U+FFFD, which marks
// bytes that were not); a provider_txn_id must also be one the channel's
// provider takes (pipeline.ChannelSpec.CheckTxn); confirmed_at must fall in w
// (half-open) and paid_at must not be after confirmed_at.
//
// The Reject keeps whatever could be read of the row, as text
// (pipeline.RejectOf).
func Validate(row pipeline.SourceRow, w pipeline.Window, channels pipeline.Channels) (pipeline.Order, *pipeline.Reject) {
	o, err := validate(row, w, channels)
	if err != nil {
		rej := pipeline.RejectOf(row, err.Error())
		return pipeline.Order{}, &rej
	}
	return o, nil
}

// MaxAmountMinor is the largest amount_minor an order may carry (10^12
// minor units: 10 billion US dollars; at Indonesian rupiah's two decimals,
// 10 billion rupiah, some 600 thousand dollars). A day of up to 9 million orders at it still sums within
// int64, so no sum of a day, a seller or a file can overflow.
const MaxAmountMinor = 1_000_000_000_000

func validate(row pipeline.SourceRow, w pipeline.Window, channels pipeline.Channels) (pipeline.Order, error) {
	var o pipeline.Order
	var err error
	if o.OrderNo, err = exact("order_no", row.OrderNo); err != nil {
		return o, err
	}
	if err := pipeline.CheckIdentifier("order_no", o.OrderNo); err != nil {
		return o, err
	}
	if o.SellerID, err = required("seller_id", row.SellerID); err != nil {
		return o, err
	}
	if err := pipeline.CheckIdentifier("seller_id", o.SellerID); err != nil {
		return o, err
	}
	if strings.Contains(o.SellerID, "/") {
		// Payout subjects are "KIND/DATE/SELLER/CURRENCY".
		return o, fmt.Errorf("seller_id %q contains '/'", o.SellerID)
	}
	provider, err := exact("provider", row.Provider)
	if err != nil {
		return o, err
	}
	o.Channel = pipeline.Channel(provider)
	spec, ok := channels.Spec(o.Channel)
	if !ok {
		return o, fmt.Errorf("unknown provider %q", provider)
	}
	if o.ProviderTxnID, err = txnID(spec, row.ProviderTxnID); err != nil {
		return o, err
	}
	if err := pipeline.CheckIdentifier("provider_txn_id", o.ProviderTxnID); err != nil {
		return o, err
	}
	if spec.CheckTxn != nil && o.ProviderTxnID != "" {
		if err := spec.CheckTxn(o.ProviderTxnID); err != nil {
			return o, fmt.Errorf("provider_txn_id is not a %s transaction id: %w", spec.Channel, err)
		}
	}
	cur, err := exact("currency", row.Currency)
	if err != nil {
		return o, err
	}
	if o.Currency, err = pipeline.ParseCurrency(cur); err != nil {
		return o, err
	}
	if o.Amount, err = amount("amount_minor", row.AmountMinor); err != nil {
		return o, err
	}
	if o.Amount <= 0 {
		return o, fmt.Errorf("amount_minor must be positive, got %d", o.Amount)
	}
	if o.Amount > MaxAmountMinor {
		return o, fmt.Errorf("amount_minor %d is more than an order may carry (%d)", o.Amount, int64(MaxAmountMinor))
	}
	if row.RefundedMinor != nil {
		if o.Refunded, err = amount("refunded_minor", row.RefundedMinor); err != nil {
			return o, err
		}
	}
	if o.Refunded < 0 {
		return o, fmt.Errorf("refunded_minor must not be negative, got %d", o.Refunded)
	}
	if o.Refunded > o.Amount {
		return o, fmt.Errorf("refunded_minor %d exceeds amount_minor %d", o.Refunded, o.Amount)
	}
	o.Category = deref(row.Category)
	if err := pipeline.CheckText("category", o.Category); err != nil {
		return o, err
	}
	return o, validateTimes(&o, row, w)
}

// validateTimes checks paid_at and confirmed_at and copies them into o.
func validateTimes(o *pipeline.Order, row pipeline.SourceRow, w pipeline.Window) error {
	if row.PaidAt == nil {
		return errors.New("paid_at is NULL")
	}
	if row.ConfirmedAt == nil {
		return errors.New("confirmed_at is NULL")
	}
	for _, c := range []struct {
		col string
		t   time.Time
	}{{"paid_at", *row.PaidAt}, {"confirmed_at", *row.ConfirmedAt}} {
		if inf := pipeline.TimeInfinity(c.t); inf != "" {
			return fmt.Errorf("%s is %s", c.col, inf)
		}
	}
	o.PaidAt, o.ConfirmedAt = *row.PaidAt, *row.ConfirmedAt
	loc := w.Start.Location()
	if !w.Contains(o.ConfirmedAt) {
		return fmt.Errorf("confirmed_at %s is outside the window [%s, %s)",
			stamp(o.ConfirmedAt, loc), stamp(w.Start, loc), stamp(w.End, loc))
	}
	if o.PaidAt.After(o.ConfirmedAt) {
		return fmt.Errorf("paid_at %s is after confirmed_at %s",
			stamp(o.PaidAt, loc), stamp(o.ConfirmedAt, loc))
	}
	return nil
}

// stamp formats t in the window's zone, so that the reason of a reject does
// not depend on the zone the driver happened to return.
func stamp(t time.Time, loc *time.Location) string {
	return t.In(loc).Format(time.RFC3339Nano)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// required returns the value of a column that must be neither NULL nor empty.
func required(col string, p *string) (string, error) {
	switch {
	case p == nil:
		return "", fmt.Errorf("%s is NULL", col)
	case *p == "":
		return "", fmt.Errorf("%s is empty", col)
	}
	return *p, nil
}

// exact is required, and also rejects a value with leading or trailing
// white space rather than trimming it.
func exact(col string, p *string) (string, error) {
	s, err := required(col, p)
	if err == nil && s != strings.TrimSpace(s) {
		err = fmt.Errorf("%s has leading or trailing space: %q", col, s)
	}
	return s, err
}

// txnID checks provider_txn_id: required where the channel settles per
// provider transaction, optional (NULL = "") elsewhere.
func txnID(spec pipeline.ChannelSpec, p *string) (string, error) {
	if !spec.TxnRequired && (p == nil || *p == "") {
		return "", nil
	}
	s, err := exact("provider_txn_id", p)
	if err != nil && (p == nil || *p == "") {
		err = fmt.Errorf("%w (required for %s)", err, spec.Channel)
	}
	return s, err
}

// amount parses an integer column, telling "not an integer" apart from
// "overflows". The integer must be written as PostgreSQL writes one: a
// sign "+", leading zeros or "-0" (in a text column, say) are not an
// amount of the platform's, and taking them would pay on what nobody
// wrote as an amount.
func amount(col string, p *string) (int64, error) {
	s, err := required(col, p)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	var ne *strconv.NumError
	var plain [20]byte // written back without a heap allocation: two columns of every row
	switch {
	case err == nil && string(strconv.AppendInt(plain[:0], v, 10)) != s:
		return 0, fmt.Errorf("%s is not written as an integer: %q", col, s)
	case err == nil:
		return v, nil
	case errors.As(err, &ne) && ne.Err == strconv.ErrRange:
		return 0, fmt.Errorf("%s overflows int64: %q", col, s)
	default:
		return 0, fmt.Errorf("%s is not an integer: %q", col, s)
	}
}
