-- The usage trigger costs every append even when it returns at once (measured: about a fifth of
-- the single-event append rate with 8 writers), so it is off until a tenant gets limits:
-- PgStore::set_limits enables it (and disables it when the last limits go), which needs the
-- owner of `events`, like migrations.
ALTER TABLE events DISABLE TRIGGER events_count_usage;
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM tenant_limits) THEN
        ALTER TABLE events ENABLE TRIGGER events_count_usage;
    END IF;
END $$;
