-- Snapshots of aggregate state (one per stream, the latest). The state is kept as bytes, exactly
-- as it was checksummed: jsonb would normalise it and the checksum would no longer match.
CREATE TABLE snapshots (
    tenant          text        NOT NULL,
    stream_id       text        NOT NULL,
    aggregate       text        NOT NULL,
    version         bigint      NOT NULL CHECK (version >= 1),
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    state           bytea       NOT NULL,
    checksum        bytea       NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshots_pkey PRIMARY KEY (tenant, stream_id)
);
