-- Per-tenant quotas. The usage of a tenant with limits is counted by a statement trigger on
-- `events` into sharded rows (one shard per server session: concurrent writers of a tenant never
-- wait on one counter row), and checked against its limits in the same statement: an append that would
-- pass a limit fails with SQLSTATE ES0Q1 and writes nothing. Concurrent appends do not see each
-- other's uncommitted counts, so a tenant can pass a limit by at most what the appends in flight
-- at that moment add.
CREATE TABLE tenant_limits (
    tenant                 text        PRIMARY KEY,
    max_events             bigint      CHECK (max_events >= 0),
    max_streams            bigint      CHECK (max_streams >= 0),
    max_bytes              bigint      CHECK (max_bytes >= 0),
    max_events_per_second  bigint      CHECK (max_events_per_second >= 0),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenant_usage (
    tenant         text    NOT NULL,
    shard          integer NOT NULL,
    events         bigint  NOT NULL DEFAULT 0,
    streams        bigint  NOT NULL DEFAULT 0,
    bytes          bigint  NOT NULL DEFAULT 0,
    -- The append-rate window: its second (Unix time) and the events appended in it.
    window_second  bigint  NOT NULL DEFAULT 0,
    window_events  bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, shard)
) WITH (fillfactor = 50);

CREATE FUNCTION count_tenant_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    added     record;
    lim       tenant_limits%ROWTYPE;
    total     record;
    v_second  bigint;
    v_shard   integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tenant_limits WHERE tenant IN (SELECT DISTINCT tenant FROM new_events)) THEN
        RETURN NULL;
    END IF;
    v_second := floor(extract(epoch FROM clock_timestamp()))::bigint;
    v_shard := pg_backend_pid() % 64;
    FOR added IN
        SELECT tenant, count(*) AS events, count(*) FILTER (WHERE stream_version = 1) AS streams,
               coalesce(sum(octet_length(payload::text)), 0) AS bytes
        FROM new_events GROUP BY tenant
    LOOP
        SELECT * INTO lim FROM tenant_limits WHERE tenant = added.tenant;
        CONTINUE WHEN NOT FOUND;
        INSERT INTO tenant_usage AS u (tenant, shard, events, streams, bytes, window_second, window_events)
        VALUES (added.tenant, v_shard, added.events, added.streams, added.bytes, v_second, added.events)
        ON CONFLICT (tenant, shard) DO UPDATE SET
            events = u.events + excluded.events,
            streams = u.streams + excluded.streams,
            bytes = u.bytes + excluded.bytes,
            window_events = CASE WHEN u.window_second = excluded.window_second
                                 THEN u.window_events + excluded.window_events
                                 ELSE excluded.window_events END,
            window_second = excluded.window_second;
        SELECT sum(events) AS events, sum(streams) AS streams, sum(bytes) AS bytes,
               coalesce(sum(window_events) FILTER (WHERE window_second = v_second), 0) AS rate
        INTO total FROM tenant_usage WHERE tenant = added.tenant;
        IF lim.max_events IS NOT NULL AND total.events > lim.max_events THEN
            RAISE EXCEPTION 'tenant % is over its events quota', added.tenant USING ERRCODE = 'ES0Q1',
                DETAIL = format('events %s %s %s', lim.max_events, total.events - added.events, added.events);
        END IF;
        IF lim.max_streams IS NOT NULL AND added.streams > 0 AND total.streams > lim.max_streams THEN
            RAISE EXCEPTION 'tenant % is over its streams quota', added.tenant USING ERRCODE = 'ES0Q1',
                DETAIL = format('streams %s %s %s', lim.max_streams, total.streams - added.streams, added.streams);
        END IF;
        IF lim.max_bytes IS NOT NULL AND total.bytes > lim.max_bytes THEN
            RAISE EXCEPTION 'tenant % is over its bytes quota', added.tenant USING ERRCODE = 'ES0Q1',
                DETAIL = format('bytes %s %s %s', lim.max_bytes, total.bytes - added.bytes, added.bytes);
        END IF;
        IF lim.max_events_per_second IS NOT NULL AND total.rate > lim.max_events_per_second THEN
            RAISE EXCEPTION 'tenant % is over its events_per_second quota', added.tenant USING ERRCODE = 'ES0Q1',
                DETAIL = format('events_per_second %s %s %s', lim.max_events_per_second, total.rate - added.events, added.events);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_count_usage AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION count_tenant_usage();

-- The trigger costs every append even when it returns at once (measured: about a fifth of the
-- single-event append rate with 8 writers), so it is off until a tenant gets limits:
-- PgStore::set_limits turns it on (and off when the last limits go, which needs the owner of
-- `events`, like migrations); setting limits counts the tenant's stored events once.
ALTER TABLE events DISABLE TRIGGER events_count_usage;
