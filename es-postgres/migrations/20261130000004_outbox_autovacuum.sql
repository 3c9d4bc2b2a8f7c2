-- The outbox is a queue: every message is inserted, updated once (delivered) and deleted an
-- hour later. Left to the default autovacuum thresholds (20% of the table), the dead index
-- entries of delivered rows pile up in `outbox_pending` and every relay pass wades through them.
-- Vacuum it after a few thousand changes instead, without the cost-based pause.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0
);
