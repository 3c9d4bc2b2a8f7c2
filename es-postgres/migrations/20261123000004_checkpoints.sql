-- Projection checkpoints: the position of the last event each projection handled, per tenant.
-- Saved with compare-and-set (see PgTenantStore::save_checkpoint).
CREATE TABLE checkpoints (
    tenant      text        NOT NULL,
    projection  text        NOT NULL,
    position    bigint      NOT NULL CHECK (position >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkpoints_pkey PRIMARY KEY (tenant, projection)
);
