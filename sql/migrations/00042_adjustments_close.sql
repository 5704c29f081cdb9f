-- A seller's carried balance closed by a person (settle sellers close):
-- a balance below the minimum payout, or a negative one, of a seller that
-- left stayed carried for ever, and a balance held for a person (a seller
-- with no account any more) ended every night at exit 4, with no way to
-- say it was settled outside settle or forgiven.
--
-- adjustments of kind 'close': one per balance closed, amount_minor the
-- balance's opposite, so that the seller's carried balance in the
-- currency is exactly 0; the balance moves to the platform's books as a
-- reprice's difference does, by the platform's commission: commission_back
-- = amount_minor, no refund (refund_minor 0), so that refund =
-- commission_back - amount holds as it does for a clawback and a reprice.
-- subject is the close's key (CLOSE/<seller>/<currency>/<the newest entry
-- it closes>): the entries it closes, and the close itself, are netted
-- into it (netted_into, on its date), so that no revenue share nets them
-- and nothing opens them again (a failed revenue share opens only the
-- entries netted into its own subject). The key is unique: the same
-- balance is closed once.

-- +goose Up
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_kind_check;
ALTER TABLE adjustments ADD CONSTRAINT adjustments_kind_check CHECK (kind IN ('held', 'clawback', 'reprice', 'close'));
-- Applied again over itself (a ledger set back to an earlier version, its
-- later migrations' objects left), as every migration is.
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_close_check;
ALTER TABLE adjustments ADD CONSTRAINT adjustments_close_check
    CHECK (kind <> 'close' OR (order_no = '' AND refund_no = '' AND refund_minor = 0 AND commission_back = amount_minor
                               AND amount_minor <> 0 AND subject <> '' AND netted_into = subject));
CREATE UNIQUE INDEX IF NOT EXISTS adjustments_close ON adjustments (subject) WHERE kind = 'close';

-- +goose Down
DROP INDEX IF EXISTS adjustments_close;
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_close_check;
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_kind_check;
ALTER TABLE adjustments ADD CONSTRAINT adjustments_kind_check CHECK (kind IN ('held', 'clawback', 'reprice'));
