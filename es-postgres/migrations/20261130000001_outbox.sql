-- The outbox: integration messages enqueued in the same statement (hence transaction) as the
-- events they publish, delivered by relays (es_core::outbox::Relay) at least once, in per-stream
-- order. One message per event at the most; its id is the event's.

CREATE TABLE outbox (
    -- Increasing in enqueue order; within a stream, in version order (appends to one stream are
    -- serialized, and each takes its numbers after the previous one committed).
    sequence        bigserial   PRIMARY KEY,
    tenant          text        NOT NULL,
    -- es_core::outbox::partition_of(stream_id): relays lease partitions, not streams.
    partition       smallint    NOT NULL CHECK (partition >= 0),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version >= 1),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    subject         text        NOT NULL,
    payload         bytea       NOT NULL,
    -- [[name, value], …]
    headers         jsonb       NOT NULL DEFAULT '[]',
    enqueued_at     timestamptz NOT NULL,
    delivered_at    timestamptz,
    parked_reason   text,
    CONSTRAINT outbox_event_id_key UNIQUE (tenant, event_id)
);

-- What relays read: a tenant's undelivered messages by partition, in sequence order.
CREATE INDEX outbox_pending ON outbox (tenant, partition, sequence)
    WHERE delivered_at IS NULL AND parked_reason IS NULL;
-- What pruning deletes.
CREATE INDEX outbox_delivered ON outbox (tenant, enqueued_at) WHERE delivered_at IS NOT NULL;

-- Which relay delivers which partition, until when.
CREATE TABLE outbox_leases (
    tenant      text        NOT NULL,
    partition   smallint    NOT NULL,
    owner       uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, partition)
);
