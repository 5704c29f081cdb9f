-- Who made each resolution (found by an audit review: `settle resolve`
-- recorded what a person decided, when and why - the note, free text -
-- but not who; an auditor asking who resolved a failed payout had only
-- what the note happened to say). actor is the person settle resolve
-- names (--actor, SETTLE_ACTOR, else the OS user running it); db_role is
-- the database role the resolution was written under (session_user), the
-- one identity there the database itself authenticated. Rows from before
-- this migration keep '' in both: not recorded. Constant defaults, then
-- db_role's set to session_user: the columns are added without rewriting
-- the table, and the older rows are not credited to the role migrating.
--
-- And resolutions become append-only, as effect_events are (00004): no
-- code of settle changes or removes one (a second resolve of the same
-- attempt keeps the first, ON CONFLICT DO NOTHING; settle run --reextract
-- leaves them), so the database refuses UPDATE, DELETE and TRUNCATE of
-- them. A role that owns the table can still drop the trigger: that is
-- DDL, for the database's own audit log to show. IF (NOT) EXISTS and OR
-- REPLACE: a ledger whose version table was set back by hand past it
-- migrates again.

-- +goose Up
ALTER TABLE resolutions ADD COLUMN IF NOT EXISTS actor text NOT NULL DEFAULT '';
ALTER TABLE resolutions ADD COLUMN IF NOT EXISTS db_role text NOT NULL DEFAULT '';
ALTER TABLE resolutions ALTER COLUMN db_role SET DEFAULT session_user;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION resolutions_append_only() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION 'resolutions is append-only: % refused', TG_OP;
END
$$;
-- +goose StatementEnd
DROP TRIGGER IF EXISTS resolutions_append_only ON resolutions;
DROP TRIGGER IF EXISTS resolutions_no_truncate ON resolutions;
CREATE TRIGGER resolutions_append_only BEFORE UPDATE OR DELETE ON resolutions
    FOR EACH ROW EXECUTE FUNCTION resolutions_append_only();
CREATE TRIGGER resolutions_no_truncate BEFORE TRUNCATE ON resolutions
    FOR EACH STATEMENT EXECUTE FUNCTION resolutions_append_only();

-- +goose Down
DROP TRIGGER IF EXISTS resolutions_no_truncate ON resolutions;
DROP TRIGGER IF EXISTS resolutions_append_only ON resolutions;
DROP FUNCTION IF EXISTS resolutions_append_only();
ALTER TABLE resolutions DROP COLUMN IF EXISTS db_role;
ALTER TABLE resolutions DROP COLUMN IF EXISTS actor;
