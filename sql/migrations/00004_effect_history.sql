-- Every effect's history (issue 13, point 9): each change of an attempt's
-- state, with its time, its cause and the provider's words, append-only. The
-- ledger writes an event in the same statement as the change it describes, so
-- an answer lost and later resolved by query stays visible
-- (planned>sent>unknown>succeeded) however often last_error is overwritten.

-- +goose Up
CREATE TABLE effect_events (
    id            bigserial   PRIMARY KEY,
    effect_id     bigint      NOT NULL REFERENCES effects (id),
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_state    text        NOT NULL DEFAULT '', -- '' for the intent
    to_state      text        NOT NULL
                              CHECK (to_state IN ('planned', 'sent', 'unknown', 'succeeded', 'failed')),
    cause         text        NOT NULL,            -- planned, sent, send error, answer, query
    sends         int         NOT NULL DEFAULT 0,  -- the attempt's sends after the change
    provider_ref  text        NOT NULL DEFAULT '',
    detail        text        NOT NULL DEFAULT ''  -- the provider's words, or the error
);
CREATE INDEX effect_events_effect ON effect_events (effect_id, id);

-- Append-only: an event, once written, is neither changed nor removed.
-- +goose StatementBegin
CREATE FUNCTION effect_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'effect_events is append-only: % refused', TG_OP;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER effect_events_append_only BEFORE UPDATE OR DELETE ON effect_events
    FOR EACH ROW EXECUTE FUNCTION effect_events_append_only();
CREATE TRIGGER effect_events_no_truncate BEFORE TRUNCATE ON effect_events
    FOR EACH STATEMENT EXECUTE FUNCTION effect_events_append_only();

-- Effects recorded before the history was kept get one event: their state
-- as it stood, so every effect has a history.
INSERT INTO effect_events (effect_id, at, from_state, to_state, cause, sends, provider_ref, detail)
SELECT id, updated_at, '', state, 'recorded before the history was kept', sends, provider_ref, last_error
FROM effects ORDER BY id;

-- +goose Down
DROP TABLE effect_events;
DROP FUNCTION effect_events_append_only();
