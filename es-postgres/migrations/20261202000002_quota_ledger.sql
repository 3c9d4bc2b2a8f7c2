-- Quotas without a cost on the append path. The statement trigger of 20261201000002 counted
-- every append into per-session rows; measured, any per-append counter write costs a quarter to
-- half of the single-event append rate on this kind of machine. Usage is now counted from the log
-- itself: each process checks appends against what it knows (the tenant's counted usage, its
-- own appends since, what it has in flight) and refreshes that knowledge every
-- `PgStoreOptions::quota_sync_interval` with `tenant_usage_sync()`, which counts the events
-- between the tenant's mark and the read horizon once, whoever calls it. Nothing is lost when a
-- process dies: the log is the count.
DROP TRIGGER events_count_usage ON events;
DROP FUNCTION count_tenant_usage();
DROP TABLE tenant_usage;

-- A tenant with limits: its usage counted through `counted_through` (a position at or below the
-- read horizon when it was counted), and the events counted whose `recorded_at` fell in the
-- second `window_second` (Unix time, the server's clock), for the append rate.
CREATE TABLE tenant_usage (
    tenant           text        PRIMARY KEY,
    counted_through  bigint      NOT NULL DEFAULT 0,
    events           bigint      NOT NULL DEFAULT 0,
    streams          bigint      NOT NULL DEFAULT 0,
    bytes            bigint      NOT NULL DEFAULT 0,
    window_second    bigint      NOT NULL DEFAULT 0,
    window_events    bigint      NOT NULL DEFAULT 0,
    counted_at       timestamptz NOT NULL DEFAULT now()
);

CREATE POLICY tenant_isolation ON tenant_usage
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));

-- A tenant's limits and its usage counted through `p_horizon` (no row when it has no limits).
-- Serialised per tenant by the row lock, so two processes never count one event twice.
CREATE FUNCTION tenant_usage_sync(p_tenant text, p_horizon bigint)
RETURNS TABLE (
    o_max_events bigint, o_max_streams bigint, o_max_bytes bigint, o_max_events_per_second bigint,
    o_counted_through bigint, o_events bigint, o_streams bigint, o_bytes bigint,
    o_window_second bigint, o_window_events bigint
)
LANGUAGE plpgsql AS $$
DECLARE
    lim       tenant_limits%ROWTYPE;
    u         tenant_usage%ROWTYPE;
    f         record;
    v_second  bigint := floor(extract(epoch FROM now()))::bigint;
BEGIN
    SELECT * INTO lim FROM tenant_limits WHERE tenant = p_tenant;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO tenant_usage (tenant) VALUES (p_tenant) ON CONFLICT (tenant) DO NOTHING;
    SELECT * INTO u FROM tenant_usage WHERE tenant = p_tenant FOR UPDATE;
    IF p_horizon > u.counted_through THEN
        SELECT count(*) AS events, count(*) FILTER (WHERE stream_version = 1) AS streams,
               coalesce(sum(octet_length(payload::text)), 0) AS bytes,
               count(*) FILTER (WHERE recorded_at >= to_timestamp(v_second)) AS recent
        INTO f FROM events
        WHERE tenant = p_tenant AND position > u.counted_through AND position <= p_horizon;
        UPDATE tenant_usage SET
            counted_through = p_horizon,
            events = u.events + f.events,
            streams = u.streams + f.streams,
            bytes = u.bytes + f.bytes,
            window_events = CASE WHEN u.window_second = v_second THEN u.window_events + f.recent
                                 ELSE f.recent END,
            window_second = v_second,
            counted_at = now()
        WHERE tenant = p_tenant
        RETURNING * INTO u;
    END IF;
    RETURN QUERY SELECT lim.max_events, lim.max_streams, lim.max_bytes, lim.max_events_per_second,
        u.counted_through, u.events, u.streams, u.bytes,
        CASE WHEN u.window_second = v_second THEN v_second ELSE 0 END,
        CASE WHEN u.window_second = v_second THEN u.window_events ELSE 0 END;
END
$$;
