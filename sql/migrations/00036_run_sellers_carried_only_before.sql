-- Marks carried_only (migration 00035) on the records a settle from
-- before 00035 made of sellers with only a carried balance. Those
-- settles recorded such sellers too, from b83e93d on
-- (pipeline.CarriedSellers), only unmarked, and 00035 left every earlier
-- record false, taking each for a seller the day's rows named. A newer
-- settle then took such a record for a date the seller's rows were read
-- (EachPayoutCandidate): with the account a date before had held the
-- seller's orders for, shared with another seller, and none of its
-- orders held there, the seller's carried balance was paid to that
-- account (found by the review of an upgrade deployed while dates are
-- half done: TestAHeldSellersCarriedBalanceIsNotPaidToTheSharedIDAfterAnUpgrade).
--
-- A record is of a seller the run's rows named when the run holds an item
-- or a reject of the seller, once its transform stage is done: every row
-- a run reads is one or the other (a duplicated order's item becomes a
-- reject, with its seller). A run whose transform is not done (stopped
-- after its extract stage, the records written, no item yet) is asked its
-- source rows instead, read once for those runs (a few: dates half done).
-- Only the sellers with a balance carried from the record's date or
-- before are looked at (no other seller is read for one), each record by
-- the index of items by date and seller. Measured on the 2-core VM, a
-- ledger of 150 dates (300,000 records, 1,500,000 items): 1.6 s. A record a
-- settle of 00035 on made is marked already, or named by its rows: left
-- as it is. Nothing to undo: the down section leaves the marks (00035's
-- down drops the column). As any migration, it has the images before it
-- refused on a ledger it migrated (Ledger.Migrate), those from 00035 on
-- among them: one rolled back would write its records as it does, marked,
-- but without the fixes made since.

-- +goose Up
UPDATE run_sellers rs SET carried_only = true
FROM runs r
WHERE r.id = rs.run_id AND NOT rs.carried_only
  AND EXISTS (SELECT 1 FROM adjustments a WHERE a.seller_id = rs.seller_id AND a.business_date <= r.business_date)
  AND CASE WHEN 'transform' = ANY (r.stages_done) THEN
        NOT EXISTS (SELECT 1 FROM items i WHERE i.business_date = r.business_date AND i.seller_id = rs.seller_id AND i.run_id = rs.run_id)
        AND NOT EXISTS (SELECT 1 FROM rejects j WHERE j.run_id = rs.run_id AND j.seller_id = rs.seller_id)
      ELSE (rs.run_id, rs.seller_id) NOT IN (SELECT s.run_id, s.seller_id FROM source_rows s
                                             WHERE s.run_id = ANY (ARRAY(SELECT id FROM runs WHERE NOT 'transform' = ANY (stages_done)))
                                               AND s.seller_id IS NOT NULL) END;

-- +goose Down
SELECT 1;
