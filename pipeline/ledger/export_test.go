package ledger

import (
	"context"
	"database/sql"
	"io/fs"
	"time"

	"github.com/lib/pq"
	"github.com/pressly/goose/v3"

	"github.com/settlekit/settle/pipeline"
	settlesql "github.com/settlekit/settle/sql"
)

// ItemsForTradeQuery is the per-file item query, for tests that look at
// its plan.
const ItemsForTradeQuery = itemsForTradeQuery

// PageQueries are the keyset pages of a run's items, for tests that look
// at their plans: each query's arguments are the run, the channel, then
// those the function named gives it.
var PageQueries = map[string]string{
	"RefundedItemsAfter":  refundedItemsAfterQuery,
	"WeChatItemsAfter":    weChatItemsAfterQuery,
	"WeChatAttemptsAfter": weChatAttemptsAfterQuery,
	"walk":                itemsWalkQuery, // ItemsInStateAfter's and ItemsToVerifyAfter's
}

// WalkedPageQueries read the items in a state of a page's walk, for tests
// that look at their plans: their arguments are the run, the channel, the
// state or hold prefix, and the walk's bounds.
var WalkedPageQueries = map[string]string{
	"ItemsInStateAfter":  itemsInStateQuery,
	"ItemsToVerifyAfter": itemsToVerifyQuery,
}

// SkippedOfRunQuery is SkippedOfRun's, for tests that look at its plan.
const SkippedOfRunQuery = skippedOfRunQuery

// ProviderRejectsQuery is ProviderRejectsOfRun's, for tests that look at
// its plan.
const ProviderRejectsQuery = providerRejectsQuery

// HeldOfRunQuery is HeldOfRun's, for tests that look at its plan.
const HeldOfRunQuery = heldOfRunQuery

// SellerHoldsQuery and SellersRejectedHeldQuery are SellerHolds' and
// SellersRejectedHeld's, for tests that look at their plans.
const (
	SellerHoldsQuery         = sellerHoldsQuery
	SellersRejectedHeldQuery = sellersRejectedHeldQuery
)

// RejectedItemsQuery is RejectedItemsAfter's page, for tests that look at
// its plan.
const RejectedItemsQuery = rejectedItemsQuery

// ProviderTxnsOfRunQuery is ProviderTxnsOfRun's query, for its plan.
const ProviderTxnsOfRunQuery = providerTxnsOfRunQuery

// RejectedToWatchQuery is the watch's page of rejected items, for the
// test of its plan.
const RejectedToWatchQuery = rejectedToWatchQuery

// PendingLateRefundsQuery and ExpectedSharesQuery are the reads of the
// whole ledger's history (late refunds, a seller's totals at Infinia), for
// tests that look at their plans.
const (
	PendingLateRefundsQuery = pendingLateRefundsQuery
	ExpectedSharesQuery     = expectedSharesQuery
)

// DateQueries are reads of one date, one run's window or one key that
// the ledger's history must not slow, for tests that look at their plans.
var DateQueries = map[string]string{
	"SellerLines":            sellerLinesQuery,
	"clawbackSummary":        clawbackSummaryQuery,
	"RejectedLateRefunds":    rejectedLateRefundsQuery,
	"lateRefundStatus":       lateRefundsOfDateQuery,
	"SellerOfInfiniaID":      sellerOfInfiniaIDQuery,
	"KnownSellers":           knownSellersQuery,
	"WeChatDistributedAfter": weChatDistributedAfterQuery,
	"repriceSummary":         repriceSummaryQuery,
	"repriceItems":           repriceItemsQuery,
}

// SetMaxHeldRejects sets how many rejects the direct way of WriteItems
// holds, until restore is called.
func SetMaxHeldRejects(n int) (restore func()) {
	old := maxHeldRejects
	maxHeldRejects = n
	return func() { maxHeldRejects = old }
}

// OpenTradeFilesQuery is the keyset page of a run's open trade files,
// for tests that look at its plan: its arguments are the run, the cursor
// (an id) and the page's size.
const OpenTradeFilesQuery = openTradeFilesQuery

// EffectsOfKindAfterQuery is the keyset page of a run's effects of one
// kind and subject prefix, for tests that look at its plan: its
// arguments are the run, the kind, the prefix and its end, the cursor
// (subject, attempt) and the page's size.
const EffectsOfKindAfterQuery = effectsOfKindAfterQuery

// MigrateTo applies the embedded migrations up to version alone, for tests
// of a migration's work on a ledger written by the versions before it.
func (l *Ledger) MigrateTo(ctx context.Context, version int64) error {
	if _, err := l.db.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+pq.QuoteIdentifier(l.schema)); err != nil {
		return err
	}
	fsys, err := fs.Sub(settlesql.Migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, l.db.DB, fsys)
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}

// SetMigrateLockWait sets how long l's migrations wait for a lock.
func (l *Ledger) SetMigrateLockWait(d time.Duration) { l.lockWait = d }

// MarkSentQuery is MarkSent's statement ($1 the effect), for a test of
// its plan.
var MarkSentQuery = markSentSQL

// UnappliedPayoutsQuery is UnappliedPayouts' statement, for a test of
// its plan.
const UnappliedPayoutsQuery = unappliedPayoutsQuery

// PayoutSucceededCarriedQuery is PayoutSucceeded's statement marking paid
// the carried items netted into the payout ($1 its subject, $2 its key, $3
// the provider's reference), for a test of its plan.
const PayoutSucceededCarriedQuery = payoutSucceededCarriedQuery

// FailedPayoutsQuery is FailedPayouts' statement ($1 the date, $2 and $3
// the shard), for a test of its plan.
const FailedPayoutsQuery = failedPayoutsQuery

// OpenEffectsAfterQuery is OpenEffectsAfter's statement ($1 the run, $2
// the kind, $3 the cursor, $4 the page's size), for a test of its plan.
const OpenEffectsAfterQuery = openEffectsAfterQuery

// LeftUndoneQuery is LeftUndone's read, for tests that look at its plan.
const LeftUndoneQuery = leftUndoneQuery

// SetStatusHook makes DateStatus call f between its sections, with the
// section read ("runs", "summary", "effects").
func (l *Ledger) SetStatusHook(f func(section string)) { l.statusHook = f }

// SendsQuery is Sends' statement, for tests that look at its plan.
const SendsQuery = sendsQuery

// SubjectHistoryIn is SubjectHistory's read on tx, for tests that look at
// what it read (pg_stat_xact_user_tables).
func SubjectHistoryIn(ctx context.Context, tx *sql.Tx, d pipeline.Date, subject string) (*SubjectHistory, error) {
	return Reader{tx}.subjectHistory(ctx, d, subject)
}

// OrderBalanced is orderBalanced, for its own test.
var OrderBalanced = orderBalanced

// OrderHistoryIn is OrderHistory's read on tx, for tests that look at what
// it read (pg_stat_xact_user_tables).
func OrderHistoryIn(ctx context.Context, tx *sql.Tx, d pipeline.Date, orderNo string) (*OrderHistory, error) {
	return Reader{tx}.orderHistory(ctx, d, orderNo)
}

// SkippedOpenQuery is ShardHealth's count of the orders left out on
// purpose, for tests that look at its plan.
const SkippedOpenQuery = skippedOpenQuery
