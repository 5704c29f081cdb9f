-- Each seller's running totals at Infinia, by currency (issue #14: every
-- query of a night costs in proportion to that night, not to the ledger's
-- history). The reconciliation compares a seller's available share at
-- Infinia with what the ledger expects of it: the seller amounts of every
-- trade file Infinia accepted, less every revenue share paid or on its way,
-- over all dates. It summed them from trade_files and effects each night,
-- one statement that read and sorted every trade file and revenue share
-- of the ledger: 5.7-6.1 s on a ledger of 100 days of 10,000 sellers in two
-- currencies (2,000,000 of each), spilling a sort of 168 MB to disk, and
-- growing with every day kept.
--
-- share_totals keeps those sums, one row per seller and currency, moved by
-- triggers with every trade file and revenue share recorded, changed or
-- removed, in the same transaction, whatever writes it (the ledger's
-- methods, a re-extract, a person's UPDATE). `version` counts the changes
-- of the row: the reconciliation's mark of a seller's activity, which
-- moves with every change that could move the share at Infinia - a file
-- or payout recorded or removed, a change of its status or state, amount,
-- seller or currency (a file failed, a payout planned) - even when the
-- figures do not. A change of anything else (a send counted, an answer's
-- words, an error file's address) calls no trigger.
--
-- The sums are numeric, as the sums they replace: a total past 64 bits is
-- an error when read, never a refused write of a file or a payout. Rows are
-- never removed: a pair whose files and payouts are all gone keeps zeros.
-- Shards own disjoint sellers, so two shards never move the same row; two
-- dates' runs of one seller at once take turns on its row, one write each.
-- The one write of the job that moves many pairs at once, a re-extract's
-- removal of a run's files and payouts, locks their rows first, in one
-- order (Ledger.Reextract), so that two of them never deadlock.

-- +goose Up
CREATE TABLE share_totals (
    seller_id  text    COLLATE "C" NOT NULL,
    currency   text    COLLATE "C" NOT NULL,
    files      bigint  NOT NULL DEFAULT 0,  -- trade files recorded, any status
    uploaded   numeric NOT NULL DEFAULT 0,  -- seller amounts of the files Infinia accepted (SUCCESS)
    shares     bigint  NOT NULL DEFAULT 0,  -- revenue-share attempts recorded, any state
    paid       numeric NOT NULL DEFAULT 0,  -- amounts of the revenue shares succeeded
    in_flight  numeric NOT NULL DEFAULT 0,  -- amounts of the revenue shares sent or unknown
    version    bigint  NOT NULL DEFAULT 0,  -- changes of this row
    PRIMARY KEY (seller_id, currency)
);

-- share_totals_move adds to a pair's totals, creating its row on the pair's
-- first write. PL/pgSQL keeps its statements' plans for the session (an
-- SQL-language function planned its statement at every call: 200 µs a
-- write, against about 50 here).
-- +goose StatementBegin
CREATE FUNCTION share_totals_move(p_seller text, p_currency text, p_files bigint, p_uploaded numeric,
                                  p_shares bigint, p_paid numeric, p_in_flight numeric)
RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE share_totals
    SET files = files + p_files, uploaded = uploaded + p_uploaded, shares = shares + p_shares,
        paid = paid + p_paid, in_flight = in_flight + p_in_flight, version = version + 1
    WHERE seller_id = p_seller AND currency = p_currency;
    IF NOT FOUND THEN
        INSERT INTO share_totals AS t (seller_id, currency, files, uploaded, shares, paid, in_flight, version)
        VALUES (p_seller, p_currency, p_files, p_uploaded, p_shares, p_paid, p_in_flight, 1)
        ON CONFLICT (seller_id, currency) DO UPDATE
        SET files = t.files + excluded.files, uploaded = t.uploaded + excluded.uploaded,
            shares = t.shares + excluded.shares, paid = t.paid + excluded.paid,
            in_flight = t.in_flight + excluded.in_flight, version = t.version + 1;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION share_totals_files() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seller_id = NEW.seller_id AND OLD.currency = NEW.currency THEN
        UPDATE share_totals
        SET uploaded = uploaded + CASE WHEN NEW.status = 'SUCCESS' THEN NEW.seller_minor ELSE 0 END
                                - CASE WHEN OLD.status = 'SUCCESS' THEN OLD.seller_minor ELSE 0 END,
            version = version + 1
        WHERE seller_id = NEW.seller_id AND currency = NEW.currency;
        IF FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM share_totals_move(OLD.seller_id, OLD.currency, -1,
            CASE WHEN OLD.status = 'SUCCESS' THEN -OLD.seller_minor ELSE 0 END, 0, 0, 0);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM share_totals_move(NEW.seller_id, NEW.currency, 1,
            CASE WHEN NEW.status = 'SUCCESS' THEN NEW.seller_minor ELSE 0 END, 0, 0, 0);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER share_totals_files AFTER INSERT OR DELETE ON trade_files
    FOR EACH ROW EXECUTE FUNCTION share_totals_files();
CREATE TRIGGER share_totals_files_update AFTER UPDATE ON trade_files
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.seller_minor IS DISTINCT FROM NEW.seller_minor
                       OR OLD.seller_id IS DISTINCT FROM NEW.seller_id OR OLD.currency IS DISTINCT FROM NEW.currency)
    EXECUTE FUNCTION share_totals_files();

-- A revenue share's seller is the third part of its subject,
-- RS/<YYYYMMDD>/<seller>/<currency>. A change of state or amount of the
-- same pair is one UPDATE of its row.
-- +goose StatementBegin
CREATE FUNCTION share_totals_effects() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.kind = 'revenue_share' AND NEW.kind = 'revenue_share'
       AND OLD.subject = NEW.subject AND OLD.currency = NEW.currency THEN
        UPDATE share_totals
        SET paid = paid + CASE WHEN NEW.state = 'succeeded' THEN NEW.amount_minor ELSE 0 END
                        - CASE WHEN OLD.state = 'succeeded' THEN OLD.amount_minor ELSE 0 END,
            in_flight = in_flight + CASE WHEN NEW.state IN ('sent', 'unknown') THEN NEW.amount_minor ELSE 0 END
                                  - CASE WHEN OLD.state IN ('sent', 'unknown') THEN OLD.amount_minor ELSE 0 END,
            version = version + 1
        WHERE seller_id = split_part(NEW.subject, '/', 3) AND currency = NEW.currency;
        IF FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.kind = 'revenue_share' THEN
        PERFORM share_totals_move(split_part(OLD.subject, '/', 3), OLD.currency, 0, 0, -1,
            CASE WHEN OLD.state = 'succeeded' THEN -OLD.amount_minor ELSE 0 END,
            CASE WHEN OLD.state IN ('sent', 'unknown') THEN -OLD.amount_minor ELSE 0 END);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.kind = 'revenue_share' THEN
        PERFORM share_totals_move(split_part(NEW.subject, '/', 3), NEW.currency, 0, 0, 1,
            CASE WHEN NEW.state = 'succeeded' THEN NEW.amount_minor ELSE 0 END,
            CASE WHEN NEW.state IN ('sent', 'unknown') THEN NEW.amount_minor ELSE 0 END);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- Only revenue shares, and of a change only one of what moves the sums:
-- a state, an amount, a seller or currency (not a send counted or an
-- answer's words recorded). The rest are skipped by their WHEN, without a
-- call.
CREATE TRIGGER share_totals_effects_insert AFTER INSERT ON effects
    FOR EACH ROW WHEN (NEW.kind = 'revenue_share') EXECUTE FUNCTION share_totals_effects();
CREATE TRIGGER share_totals_effects_update AFTER UPDATE ON effects
    FOR EACH ROW WHEN ((OLD.kind = 'revenue_share' OR NEW.kind = 'revenue_share')
                       AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.amount_minor IS DISTINCT FROM NEW.amount_minor
                            OR OLD.subject IS DISTINCT FROM NEW.subject OR OLD.currency IS DISTINCT FROM NEW.currency
                            OR OLD.kind IS DISTINCT FROM NEW.kind))
    EXECUTE FUNCTION share_totals_effects();
CREATE TRIGGER share_totals_effects_delete AFTER DELETE ON effects
    FOR EACH ROW WHEN (OLD.kind = 'revenue_share') EXECUTE FUNCTION share_totals_effects();

-- The ledger's history so far, summed once. The triggers above already
-- hold their tables' locks (CREATE TRIGGER takes one that keeps writers
-- out until this migration commits), so nothing is written between them
-- and this sum.
INSERT INTO share_totals (seller_id, currency, files, uploaded, shares, paid, in_flight, version)
SELECT seller_id, currency, sum(files), sum(uploaded), sum(shares), sum(paid), sum(in_flight), sum(files) + sum(shares)
FROM (
    SELECT seller_id, currency, count(*) AS files, COALESCE(sum(seller_minor) FILTER (WHERE status = 'SUCCESS'), 0) AS uploaded,
           0 AS shares, 0 AS paid, 0 AS in_flight
    FROM trade_files GROUP BY 1, 2
    UNION ALL
    SELECT split_part(subject, '/', 3), currency, 0, 0, count(*),
           COALESCE(sum(amount_minor) FILTER (WHERE state = 'succeeded'), 0),
           COALESCE(sum(amount_minor) FILTER (WHERE state IN ('sent', 'unknown')), 0)
    FROM effects WHERE kind = 'revenue_share' GROUP BY 1, 2
) x
GROUP BY 1, 2;

-- +goose Down
DROP TRIGGER share_totals_effects_delete ON effects;
DROP TRIGGER share_totals_effects_update ON effects;
DROP TRIGGER share_totals_effects_insert ON effects;
DROP FUNCTION share_totals_effects();
DROP TRIGGER share_totals_files_update ON trade_files;
DROP TRIGGER share_totals_files ON trade_files;
DROP FUNCTION share_totals_files();
DROP FUNCTION share_totals_move(text, text, bigint, numeric, bigint, numeric, numeric);
DROP TABLE share_totals;
