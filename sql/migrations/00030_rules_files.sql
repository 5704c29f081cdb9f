-- The rules files runs split their days with, kept whole (found by an
-- audit review: a run recorded its rules' hash, and each item the rule it
-- was split by as the file names it, "rules.csv:3" - a line of a file the
-- ledger did not hold; asked why a seller was charged 8% on a date, a
-- person needed the very file, kept somewhere else or not at all).
-- One row per file as read (its base name and bytes): file_hash is the
-- hex SHA-256 of the name, a zero byte and the bytes; rules_hash is the
-- hash of the rules' content the run records (transform.Rules.Hash), the
-- same for a file reordered or renamed. runs.rules_file names the file the
-- run's transform stage split its items with, kept with rules_hash once
-- that stage is done; NULL for a run from before this migration.
-- Append-only, as resolutions are (00029): a kept file is evidence. Its
-- trigger function names the table it refuses for (TG_TABLE_NAME), for
-- the append-only tables to come.

-- +goose Up
CREATE TABLE IF NOT EXISTS rules_files (
    file_hash   text        PRIMARY KEY,
    name        text        NOT NULL,
    rules_hash  text        NOT NULL,
    body        bytea       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS rules_file text REFERENCES rules_files (file_hash);

-- Every run writes it: the roles that may open a run (INSERT on runs: a
-- least-privilege run role, granted its rows' privileges on the tables
-- there were) may read and add kept files, or the first night after the
-- deploy was exit 2, "permission denied for table rules_files" (found by
-- a review). Only what a run does: no UPDATE or DELETE, append-only.
-- +goose StatementBegin
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = 'runs'::regclass AND a.privilege_type = 'INSERT' AND a.grantee <> c.relowner
    LOOP
        EXECUTE 'GRANT SELECT, INSERT ON rules_files TO ' || grantee;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END
$$;
-- +goose StatementEnd
DROP TRIGGER IF EXISTS rules_files_append_only ON rules_files;
DROP TRIGGER IF EXISTS rules_files_no_truncate ON rules_files;
CREATE TRIGGER rules_files_append_only BEFORE UPDATE OR DELETE ON rules_files
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER rules_files_no_truncate BEFORE TRUNCATE ON rules_files
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- +goose Down
ALTER TABLE runs DROP COLUMN IF EXISTS rules_file;
DROP TABLE IF EXISTS rules_files;
DROP FUNCTION IF EXISTS append_only();
