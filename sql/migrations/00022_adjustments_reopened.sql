-- A failed revenue share that paid a carried balance alone was never
-- counted as failed (found by a review): PayoutFailed opens again the
-- entries it had netted, which keep the subjects of the revenue shares
-- whose items they carried, and carries no items of its own, so the
-- count of failed payouts (FailedPayouts: a failed revenue share whose
-- money is still owed) found nothing of it - payouts.csv said failed, the
-- balance was still owed, and the reconciliation of its date said 0
-- failed payouts.
--
-- reopened_from keeps the subject of the failed revenue share that opened
-- an entry again; FailedPayouts counts the failure while such an entry is
-- still open. A constant default: the column is added without rewriting
-- the table. Entries opened again before this migration cannot be told
-- (their old netted_into was cleared): such a failure stays uncounted,
-- as before, until the next revenue share of the seller pays them.

-- +goose Up
ALTER TABLE adjustments ADD COLUMN reopened_from text COLLATE "C" NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE adjustments DROP COLUMN reopened_from;
