-- The inbox of a consumer of integration messages (es_core::inbox): each message it applied,
-- recorded in the same transaction as the effect, and the messages it gave up on.

CREATE TABLE inbox (
    consumer    text        NOT NULL,
    message_id  text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE inbox_parked (
    consumer    text        NOT NULL,
    message_id  text        NOT NULL,
    subject     text        NOT NULL,
    payload     bytea       NOT NULL,
    headers     jsonb       NOT NULL,
    deliveries  bigint      NOT NULL,
    error       text        NOT NULL,
    parked_at   timestamptz NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
