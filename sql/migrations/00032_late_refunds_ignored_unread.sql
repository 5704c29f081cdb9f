-- A rejected late refund the date's late-refunds query no longer gives is
-- ignored by the date's next run (Ledger.NoLongerRead), with the reason,
-- and releases its seller. One whose amount could not be read is kept at
-- 0, as when it was rejected: ignored too, not deleted (the ledger keeps
-- what it was given and what became of it). The CHECK allowed 0 to a
-- rejected row alone.

-- +goose Up
ALTER TABLE late_refunds DROP CONSTRAINT IF EXISTS late_refunds_check;
ALTER TABLE late_refunds ADD CONSTRAINT late_refunds_check CHECK (state IN ('rejected', 'ignored') OR amount_minor > 0);

-- +goose Down
UPDATE late_refunds SET state = 'rejected' WHERE state = 'ignored' AND amount_minor = 0;
ALTER TABLE late_refunds DROP CONSTRAINT IF EXISTS late_refunds_check;
ALTER TABLE late_refunds ADD CONSTRAINT late_refunds_check CHECK (state = 'rejected' OR amount_minor > 0);
