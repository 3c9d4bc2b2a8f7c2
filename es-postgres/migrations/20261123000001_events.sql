-- The event log and idempotency records.
--
-- Every name here is unqualified: the store runs its migrations with `search_path` set to its
-- schema (default `es`), so one database can hold several stores beside application tables.

-- One global order for all tenants. CACHE 1 (the default) is required: the read horizon (see
-- horizon_probe) relies on last_value being the highest position any session has taken.
-- There is no table of streams: a stream is its events, and its version is its highest
-- stream_version (one index probe). Keeping a separate row per stream would add a write and a
-- row lock to every append.
CREATE SEQUENCE event_position_seq AS bigint MINVALUE 1 CACHE 1;

CREATE TABLE events (
    tenant          text        NOT NULL,
    position        bigint      NOT NULL,
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version >= 1),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    payload         jsonb       NOT NULL,
    metadata        jsonb,
    recorded_at     timestamptz NOT NULL,
    -- read_all: a tenant's log in position order (keyset pagination).
    CONSTRAINT events_pkey PRIMARY KEY (tenant, position),
    -- read_stream, a stream's version (its highest), and optimistic concurrency: two appends can
    -- never both write one version of a stream.
    CONSTRAINT events_stream_version_key UNIQUE (tenant, stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (tenant, event_id)
);

-- Durable idempotency records (DESIGN.md appendix B): never expire, survive restarts.
CREATE TABLE idempotency_keys (
    tenant          text        NOT NULL,
    key             text        NOT NULL,
    stream_id       text        NOT NULL,
    fingerprint     bytea       NOT NULL,
    first_version   bigint      NOT NULL,
    last_version    bigint      NOT NULL,
    first_position  bigint      NOT NULL,
    last_position   bigint      NOT NULL,
    recorded_at     timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant, key)
);

-- The log is append-only, enforced by the database whoever connects (the least-privilege role in
-- docs/postgres.md has no UPDATE, DELETE or TRUNCATE rights on it either).
CREATE FUNCTION refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'ESA01',
              HINT = 'to forget personal data, destroy its key (crypto-shredding); never edit events';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_event_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change();
