-- Personal data (crypto-shredding): one data key per (tenant, subject), wrapped by a master key
-- the database never sees; a forgotten subject keeps a tombstone (no key material) for ever.
-- Subjects are named by a 16-byte digest of tenant and id, never by the id (see es_core::pii).
CREATE TABLE pii_keys (
    tenant        text        NOT NULL,
    subject       bytea       NOT NULL CHECK (octet_length(subject) = 16),
    master_key    text,
    wrapped       bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    forgotten_at  timestamptz,
    PRIMARY KEY (tenant, subject),
    -- A live key has its material; a tombstone has none.
    CONSTRAINT pii_keys_live_or_tombstone CHECK (
        (forgotten_at IS NULL AND master_key IS NOT NULL AND wrapped IS NOT NULL)
        OR (forgotten_at IS NOT NULL AND master_key IS NULL AND wrapped IS NULL)
    )
);

-- Rotation walks the keys not wrapped by the current master key.
CREATE INDEX pii_keys_master_key ON pii_keys (master_key) WHERE master_key IS NOT NULL;

-- Which streams hold a subject's data is not recorded on the append path: forgetting (rare)
-- finds them by scanning the tenant's events.

-- The audit trail: who forgot which subject (by digest), when, why.
CREATE TABLE pii_audit (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant   text        NOT NULL,
    subject  bytea       NOT NULL,
    actor    text        NOT NULL,
    reason   text        NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pii_audit_subject ON pii_audit (tenant, subject, id);
