-- An Infinia seller status notification dealt with is the same requestNo,
-- seller and status (the Infinia seller id and the notified status), not
-- the requestNo alone: a notification is unsigned in Infinia's documented
-- example, anyone holding our public key can make one, and one made with
-- the requestNo of Infinia's next (an unknown seller, or a status the
-- seller did not have yet) was recorded as dealt with, and the real one,
-- answered SUCCESS, never heard (found by a review). Only a notification
-- the binding status query confirmed is recorded now.
--
-- The rows from before have no seller and status: a repeat of one of
-- them costs a binding query, once. webhook_events is one row a
-- notification dealt with: its primary key is rebuilt in milliseconds.
-- IF (NOT) EXISTS: a ledger whose version table was set back by hand past
-- it migrates again.

-- +goose Up
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS infinia_seller_id text NOT NULL DEFAULT '';
ALTER TABLE webhook_events ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT '';
ALTER TABLE webhook_events DROP CONSTRAINT IF EXISTS webhook_events_pkey;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_pkey PRIMARY KEY (request_no, infinia_seller_id, status);

-- +goose Down
-- One row a requestNo again: the earliest of each.
DELETE FROM webhook_events a USING webhook_events b
    WHERE a.request_no = b.request_no
      AND (a.received_at, a.infinia_seller_id, a.status) > (b.received_at, b.infinia_seller_id, b.status);
ALTER TABLE webhook_events DROP CONSTRAINT IF EXISTS webhook_events_pkey;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_pkey PRIMARY KEY (request_no);
ALTER TABLE webhook_events DROP COLUMN IF EXISTS status;
ALTER TABLE webhook_events DROP COLUMN IF EXISTS infinia_seller_id;
