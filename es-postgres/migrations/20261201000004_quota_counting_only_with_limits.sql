-- Usage is counted only for tenants that have limits: an append of any other tenant costs one
-- index probe of `tenant_limits` in the trigger. Setting limits on a tenant counts its stored
-- events once (PgStore::set_limits); removing them drops its counters.
DELETE FROM tenant_usage WHERE tenant NOT IN (SELECT tenant FROM tenant_limits);

CREATE OR REPLACE FUNCTION count_tenant_usage() RETURNS trigger LANGUAGE plpgsql AS $$
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
