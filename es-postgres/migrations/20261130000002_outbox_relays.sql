-- The relays alive per tenant (each renews its row with its leases): a relay holding no
-- partition yet is counted when the others compute their fair share, so they give some up.
CREATE TABLE outbox_relays (
    tenant      text        NOT NULL,
    owner       uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, owner)
);
