-- The least-privilege role for applications using es-postgres with schema `es`.
-- Run as the schema's owner after `PgStore::migrate()`; the application then connects as a login
-- role that is a member of es_app. It can append and read, and cannot change or delete events
-- (the append-only triggers refuse that to every role; this role lacks the rights as well).
CREATE ROLE es_app NOLOGIN;
GRANT USAGE ON SCHEMA es TO es_app;
GRANT SELECT, INSERT ON es.events TO es_app;
GRANT SELECT, INSERT ON es.idempotency_keys TO es_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON es.snapshots TO es_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON es.checkpoints TO es_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON es.dead_letters TO es_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON es.outbox TO es_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON es.outbox_leases TO es_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON es.outbox_relays TO es_app;
GRANT SELECT, INSERT, DELETE ON es.inbox TO es_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON es.inbox_parked TO es_app;
-- Quotas: tenant_usage_sync() counts usage from the log into tenant_usage and reads the limits.
GRANT SELECT, INSERT, UPDATE ON es.tenant_usage TO es_app;
GRANT SELECT ON es.tenant_limits TO es_app;
-- Personal data: keys are created and tombstoned, never deleted; the audit trail only grows.
GRANT SELECT, INSERT, UPDATE ON es.pii_keys TO es_app;
GRANT SELECT, INSERT ON es.pii_audit TO es_app;
GRANT USAGE, SELECT ON SEQUENCE es.outbox_sequence_seq TO es_app;
GRANT USAGE, SELECT ON SEQUENCE es.event_position_seq TO es_app;
GRANT EXECUTE ON FUNCTION es.append_events(text, text, smallint, bigint, uuid[], text[], integer[], text[], text[], text, bytea) TO es_app;
GRANT EXECUTE ON FUNCTION es.horizon_probe() TO es_app;
GRANT EXECUTE ON FUNCTION es.running_transactions(text[]) TO es_app;
GRANT EXECUTE ON FUNCTION es.tenant_usage_sync(text, bigint) TO es_app;
-- horizon_probe() reads pg_locks; every role may (PUBLIC), so nothing more is needed for it.
