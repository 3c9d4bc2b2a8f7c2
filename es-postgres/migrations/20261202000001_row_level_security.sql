-- Row-level security, for defence in depth: a policy on every table keyed by tenant lets a
-- session see and write only the rows of the tenant in its setting `es.tenant` (or every
-- tenant's when the setting is `*`, which only the store's own cross-tenant pool sets). Without
-- the setting a session sees nothing and writes nothing.
--
-- The policies do nothing until row-level security is enabled on the tables
-- (`PgStore::set_row_level_security(true)`, as the tables' owner) and the store connects with
-- `PgStoreOptions::row_level_security(true)`, as a role that neither owns the tables nor has
-- BYPASSRLS (the least-privilege role of docs/postgres-app-role.sql): each tenant's store then
-- uses connections whose `es.tenant` names that tenant, so a query that forgot its tenant
-- predicate still cannot cross tenants. The inbox is keyed by consumer, not tenant, and has none.
CREATE FUNCTION es_tenant_visible(row_tenant text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT row_tenant = current_setting('es.tenant', true) OR current_setting('es.tenant', true) = '*'
$$;

CREATE POLICY tenant_isolation ON events
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON snapshots
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON checkpoints
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON dead_letters
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON outbox
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON outbox_leases
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON outbox_relays
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON pii_keys
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON pii_audit
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON tenant_limits
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
CREATE POLICY tenant_isolation ON tenant_usage
    USING (es_tenant_visible(tenant)) WITH CHECK (es_tenant_visible(tenant));
