-- Append in one round trip: idempotency, the expected-version check, the batch insert and the
-- idempotency record, in one statement's transaction.
--
-- Outcomes (o_outcome): 0 written; 1 idempotent replay (o_* hold the first append's result);
-- 2 version conflict (o_actual_version); 3 idempotency conflict (o_original_stream_id).
-- Errors (the statement is rolled back, nothing is written, the call may be repeated):
--   23505 on events_event_id_key  an event id of the batch is already stored;
--   ESV01                         a concurrent append took one of the versions first;
--   ESI01                         a concurrent append recorded the same idempotency key first.
--
-- Versions: the unique key (tenant, stream_id, stream_version) is the concurrency control. An
-- append computes its versions from the stream's current version and inserts them; if another
-- transaction holds one of them (committed, or committing: the insert waits for it), the insert
-- skips that row, the count falls short and the statement fails with ESV01. Exact(n) checks that
-- version n exists, so together with "n+1 is free" the stream is exactly at n and stays gap-free.
CREATE FUNCTION append_events(
    p_tenant            text,
    p_stream_id         text,
    p_expected_kind     smallint,   -- 0 any, 1 no stream, 2 stream exists, 3 exact
    p_expected_version  bigint,
    p_event_ids         uuid[],
    p_event_types       text[],
    p_schema_versions   integer[],
    p_payloads          text[],
    p_metadata          text[],
    p_idempotency_key   text,
    p_fingerprint       bytea,
    OUT o_outcome            smallint,
    OUT o_first_version      bigint,
    OUT o_last_version       bigint,
    OUT o_first_position     bigint,
    OUT o_last_position      bigint,
    OUT o_actual_version     bigint,
    OUT o_original_stream_id text,
    OUT o_recorded_at        timestamptz)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_count    integer := cardinality(p_event_ids);
    v_current  bigint;
    v_matches  boolean;
    v_inserted integer;
    v_record  idempotency_keys%ROWTYPE;
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO v_record FROM idempotency_keys k
        WHERE k.tenant = p_tenant AND k.key = p_idempotency_key;
        IF FOUND THEN
            IF v_record.fingerprint = p_fingerprint THEN
                o_outcome := 1;
                o_first_version := v_record.first_version;
                o_last_version := v_record.last_version;
                o_first_position := v_record.first_position;
                o_last_position := v_record.last_position;
                o_recorded_at := v_record.recorded_at;
            ELSE
                o_outcome := 3;
                o_original_stream_id := v_record.stream_id;
            END IF;
            RETURN;
        END IF;
    END IF;

    -- Appends to one stream take turns (a lock in memory, no WAL), so reading the version and
    -- inserting after it cannot interleave with another append to the stream. The unique key below
    -- stays the guarantee; the lock only spares concurrent appenders from failing and retrying.
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.append'), hashtext(p_tenant || '/' || p_stream_id));

    IF p_expected_kind = 3 THEN
        v_current := p_expected_version;
        v_matches := v_current = 0 OR EXISTS (
            SELECT 1 FROM events e
            WHERE e.tenant = p_tenant AND e.stream_id = p_stream_id AND e.stream_version = v_current);
    ELSE
        SELECT coalesce(max(e.stream_version), 0) INTO v_current FROM events e
        WHERE e.tenant = p_tenant AND e.stream_id = p_stream_id;
        v_matches := p_expected_kind = 0
            OR (p_expected_kind = 1 AND v_current = 0)
            OR (p_expected_kind = 2 AND v_current > 0);
    END IF;
    IF NOT v_matches THEN
        o_outcome := 2;
        SELECT coalesce(max(e.stream_version), 0) INTO o_actual_version FROM events e
        WHERE e.tenant = p_tenant AND e.stream_id = p_stream_id;
        RETURN;
    END IF;

    o_recorded_at := date_trunc('microseconds', now());
    -- unnest … WITH ORDINALITY emits rows in array order, so positions are taken in version order.
    WITH inserted AS (
        INSERT INTO events (tenant, position, stream_id, stream_version, event_id, event_type,
                            schema_version, payload, metadata, recorded_at)
        SELECT p_tenant, nextval('event_position_seq'), p_stream_id, v_current + e.ord, e.id, e.ty,
               e.sv, e.payload::jsonb, e.meta::jsonb, o_recorded_at
        FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_payloads, p_metadata)
             WITH ORDINALITY AS e(id, ty, sv, payload, meta, ord)
        ON CONFLICT (tenant, stream_id, stream_version) DO NOTHING
        RETURNING position
    )
    SELECT count(*), min(position), max(position) INTO v_inserted, o_first_position, o_last_position
    FROM inserted;
    IF v_inserted < v_count THEN
        RAISE EXCEPTION 'stream % of tenant % moved past version % while appending', p_stream_id, p_tenant, v_current
            USING ERRCODE = 'ESV01';
    END IF;

    o_outcome := 0;
    o_first_version := v_current + 1;
    o_last_version := v_current + v_count;

    IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (tenant, key, stream_id, fingerprint, first_version, last_version,
                                      first_position, last_position, recorded_at)
        VALUES (p_tenant, p_idempotency_key, p_stream_id, p_fingerprint, o_first_version,
                o_last_version, o_first_position, o_last_position, o_recorded_at)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'idempotency key % was recorded by a concurrent append', p_idempotency_key
                USING ERRCODE = 'ESI01';
        END IF;
    END IF;
END
$$;

-- The read horizon. Returns the sequence's last value L, then the virtual transaction ids of every
-- other transaction holding a RowExclusiveLock on `events` (what INSERT takes; readers take only
-- AccessShareLock). An append takes that lock when its INSERT starts, before the INSERT evaluates
-- nextval(), so a transaction holding a position p <= L appears in the list unless it has ended. Once every
-- listed transaction has ended, every position <= L is either committed (and visible) or dead:
-- readers may then return events up to L without ever missing one that commits later.
CREATE FUNCTION horizon_probe(OUT o_last_position bigint, OUT o_writers text[])
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END INTO o_last_position
    FROM event_position_seq s;
    SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}') INTO o_writers
    FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
      AND l.relation = 'events'::regclass
      AND l.mode = 'RowExclusiveLock'
      AND l.pid IS DISTINCT FROM pg_backend_pid();
END
$$;

-- Which of these transactions are still running (each holds the lock on its own virtual id).
CREATE FUNCTION running_transactions(p_virtual_ids text[]) RETURNS text[]
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(array_agg(l.virtualxid), '{}')
    FROM pg_locks l
    WHERE l.locktype = 'virtualxid' AND l.virtualxid = ANY (p_virtual_ids);
$$;
