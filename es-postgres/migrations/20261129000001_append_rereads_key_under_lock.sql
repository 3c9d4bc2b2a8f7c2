-- Idempotent appends racing on one stream (issue 11, item 1): the key was read only before the
-- stream's advisory lock, so a retry that waited for the first append's lock went on to check the
-- expected version against the stream the first append had just moved, and failed with a version
-- conflict instead of replaying the first result. The key is now read again once the lock is held.
-- Outcomes, errors and arguments are unchanged (see 20261123000002_append.sql).
CREATE OR REPLACE FUNCTION append_events(
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
    -- A replay of a recorded key needs no lock: answer it at once.
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

    -- Read the key again under the lock: a concurrent first append of the same key to this stream
    -- held the lock until it committed, and this statement (a volatile function takes a new snapshot
    -- per statement) now sees its record. Without this, a retry racing the first append would be
    -- judged on the stream's new version and answered with a VersionConflict instead of a replay.
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
