-- The provider accounts a run sends from, by effect kind ("revenue_share":
-- "--infinia-app-id A, --platform-id P"): an idempotency key is known only
-- to the account it was sent to. A run resumed with another account would
-- ask that account about a request whose answer never came, be told "not
-- found", and send it again there under the same key: paid from both.
-- OpenRun refuses such a run once the run sent something of the kind;
-- '{}' (a run from before this migration) is not judged.

-- +goose Up
ALTER TABLE runs ADD COLUMN IF NOT EXISTS accounts jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE runs DROP COLUMN IF EXISTS accounts;
