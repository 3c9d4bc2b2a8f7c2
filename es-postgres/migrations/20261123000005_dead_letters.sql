-- Events a projection parked after its handler kept failing (with the last error), until an
-- operator replays them.
CREATE TABLE dead_letters (
    tenant      text        NOT NULL,
    projection  text        NOT NULL,
    position    bigint      NOT NULL,
    event_type  text        NOT NULL,
    error       text        NOT NULL,
    attempts    integer     NOT NULL,
    parked_at   timestamptz NOT NULL,
    CONSTRAINT dead_letters_pkey PRIMARY KEY (tenant, projection, position)
);
