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

-- Append-only: an event, once written, is neither changed nor removed. The
-- one exception is `settle run --reextract`, which drops a plan that never
-- left (refused once anything of the date was sent): inside its transaction
-- (settle.reextract = 'on') the intent of an effect never sent may go with
-- its effect. Nothing that was ever sent can be removed.
-- +goose StatementBegin
CREATE FUNCTION effect_events_append_only() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('settle.reextract', true) = 'on'
       AND OLD.to_state = 'planned' AND OLD.sends = 0 THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'effect_events is append-only: % refused', TG_OP;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER effect_events_append_only BEFORE UPDATE OR DELETE ON effect_events
    FOR EACH ROW EXECUTE FUNCTION effect_events_append_only();
CREATE TRIGGER effect_events_no_truncate BEFORE TRUNCATE ON effect_events
    FOR EACH STATEMENT EXECUTE FUNCTION effect_events_append_only();

-- A change made to an effect other than through the ledger's effect
-- methods (which write their event in the same statement) is still
-- recorded: when the effect's latest event does not describe the row as it
-- now stands, one is appended, with the provider's words it holds.
-- +goose StatementBegin
CREATE FUNCTION effects_history_guard() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM (SELECT to_state, sends, provider_ref, detail FROM effect_events
                       WHERE effect_id = NEW.id ORDER BY id DESC LIMIT 1) last
        WHERE last.to_state = NEW.state AND last.sends = NEW.sends
          AND last.provider_ref = NEW.provider_ref AND last.detail = NEW.last_error) THEN
        INSERT INTO effect_events (effect_id, from_state, to_state, cause, sends, provider_ref, detail)
        VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.state ELSE '' END, NEW.state,
                'changed outside the effect protocol', NEW.sends, NEW.provider_ref, NEW.last_error);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER effects_history_guard AFTER INSERT OR UPDATE ON effects
    FOR EACH ROW EXECUTE FUNCTION effects_history_guard();

-- Effects recorded before the history was kept get one event: their state
-- as it stood, so every effect has a history.
INSERT INTO effect_events (effect_id, at, from_state, to_state, cause, sends, provider_ref, detail)
SELECT id, updated_at, '', state, 'recorded before the history was kept', sends, provider_ref, last_error
FROM effects ORDER BY id;

-- +goose Down
DROP TRIGGER effects_history_guard ON effects;
DROP FUNCTION effects_history_guard();
DROP TABLE effect_events;
DROP FUNCTION effect_events_append_only();
