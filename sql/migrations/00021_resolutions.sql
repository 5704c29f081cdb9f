-- A failed WeChat Pay payout a person settled outside settle (found by a
-- review: a distribution whose line to the platform's receiver WeChat
-- closed has released the commission to the seller, and nothing settle can
-- send collects it; the date's failed payout kept every run of it, and
-- every backfill over it, at exit 4 forever, with no way to say it was
-- dealt with).
--
-- `settle resolve` records one row per attempt a person resolved: the
-- latest attempt of a WeChat distribution, failed, whose item is paid by
-- WeChat's release of the rest to the seller, with the person's note. A
-- failed payout so resolved is no longer counted (FailedPayouts); a later
-- attempt of the same subject that fails is counted again. Nothing settle
-- may still pay is resolved by hand: a revenue share (its balance stays
-- carried, and the next payout of the seller pays it), a distribution or
-- unfreeze whose item is not paid (a re-run may send it again).

-- +goose Up
CREATE TABLE resolutions (
    kind         text COLLATE "C" NOT NULL,
    subject      text COLLATE "C" NOT NULL,
    idem_key     text COLLATE "C" NOT NULL,
    note         text NOT NULL CHECK (note <> ''),
    resolved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, subject, idem_key)
);

-- +goose Down
DROP TABLE resolutions;
