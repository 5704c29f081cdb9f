-- The channels a run left out on purpose (--skip-channel) with orders still
-- waiting, as its last channel check found them: the reports and
-- `settle status` tell those orders, left unpaid by the operator's word,
-- from orders still being paid. Each run of the date writes it again (a run
-- with the channel's provider configured writes it without the channel);
-- '{}' for a run from before this migration, and for one that left nothing
-- out.

-- +goose Up
ALTER TABLE runs ADD COLUMN IF NOT EXISTS skipped_channels text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE runs DROP COLUMN IF EXISTS skipped_channels;
