//! Row-level security (`PgStoreOptions::row_level_security`): a store connected as the
//! least-privilege role keeps every query to its tenant's rows, whatever the query says; the
//! store refuses the option where it would not hold; and a store without it fails closed.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use es_core::pii::PersonalData;
use es_core::projection::CheckpointStore;
use es_core::quota::TenantQuotas;
use es_core::snapshot::{Snapshot, SnapshotStore};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Payload,
    Position, ProjectionName, ReadAllOptions, StoreError, StreamId, TenantId,
};
use es_postgres::testing::{FreshSchema, database_url, test_master_keys};
use es_postgres::{PgStore, PgStoreOptions};
use futures_util::TryStreamExt;
use sqlx::AssertSqlSafe;

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

fn event(n: u64) -> EventData {
    EventData::json(EventType::new("test.noted").unwrap(), &format!(r#"{{"n":{n}}}"#)).unwrap()
}

/// A login role with the grants of docs/postgres-app-role.sql on the fresh schema.
async fn app_role(fresh: &FreshSchema) -> String {
    let schema = fresh.schema();
    let group = format!("{schema}_app");
    let grants = include_str!("../../docs/postgres-app-role.sql")
        .replace("es_app", &group)
        .replace("es.", &format!("{schema}."))
        .replace("SCHEMA es ", &format!("SCHEMA {schema} "));
    sqlx::raw_sql(AssertSqlSafe(grants)).execute(fresh.store.pool()).await.unwrap();
    let login = format!("{schema}_login");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE ROLE {login} LOGIN IN ROLE {group}")))
        .execute(fresh.store.pool())
        .await
        .unwrap();
    login
}

fn options_as(role: &str, fresh: &FreshSchema) -> PgStoreOptions {
    let url = database_url();
    let (_, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap_or(("", rest));
    PgStoreOptions::new(format!("postgres://{role}@{host}"))
        .schema(fresh.schema())
        .unwrap()
        .master_keys(test_master_keys())
}

async fn drop_roles(fresh: &FreshSchema, login: &str) {
    let group = format!("{}_app", fresh.schema());
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP OWNED BY {login}; DROP ROLE {login}; DROP OWNED BY {group}; DROP ROLE {group}"
    )))
    .execute(fresh.store.pool())
    .await
    .unwrap();
}

fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error.as_database_error().and_then(|db| db.code().map(std::borrow::Cow::into_owned))
}

#[tokio::test]
async fn a_query_without_its_tenant_predicate_cannot_cross_tenants() {
    let fresh = FreshSchema::new().await;
    let login = app_role(&fresh).await;
    fresh.store.set_row_level_security(true).await.unwrap();
    assert!(fresh.store.row_level_security().await.unwrap());
    let store =
        PgStore::connect_with(options_as(&login, &fresh).row_level_security(true)).await.unwrap();
    let (a, b) = (store.tenant(tenant("rls-a")), store.tenant(tenant("rls-b")));

    // Every kind of state, for two tenants, through the protected store.
    for (store, events) in [(&a, 3), (&b, 2)] {
        let stream = StreamId::new("s-1").unwrap();
        let batch: Vec<_> = (0..events).map(event).collect();
        let first = batch[0].event_id;
        store
            .append(&stream, ExpectedVersion::NoStream, batch, AppendOptions::default())
            .await
            .unwrap();
        let state = Payload::from_json(r#"{"v":1}"#).unwrap();
        store.save_snapshot(Snapshot::new("agg", stream, 1, first, 1, state)).await.unwrap();
        let view = ProjectionName::new("view").unwrap();
        store.save_checkpoint(&view, None, Position::new(1)).await.unwrap();
        store.forget("subject-1", "ticket-1", "operator").await.unwrap();
    }
    let read: Vec<_> = a.read_all(ReadAllOptions::from_beginning()).try_collect().await.unwrap();
    assert_eq!(read.len(), 3 + 1, "a's events and its forget notice");

    // A query that forgot its tenant predicate, on tenant a's connections: only a's rows.
    for table in ["events", "snapshots", "checkpoints", "pii_keys", "pii_audit"] {
        let tenants: Vec<String> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT DISTINCT tenant FROM {table}")))
                .fetch_all(a.pool())
                .await
                .unwrap();
        assert_eq!(tenants, vec!["rls-a".to_owned()], "{table}");
    }
    // Nor can it write another tenant's rows.
    let foreign = sqlx::query(
        "INSERT INTO checkpoints (tenant, projection, position) VALUES ('rls-b', 'stolen', 9)",
    )
    .execute(a.pool())
    .await
    .expect_err("a row of another tenant");
    assert_eq!(sqlstate(&foreign).as_deref(), Some("42501"), "{foreign}");
    // Changing the setting needs SQL the store never sends; the policy is the database's.
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(b.pool()).await.unwrap();
    assert_eq!(count, 2 + 1);

    // Cross-tenant work (operators' listings) runs on the store's own pool and sees all.
    let usage = store.tenants_usage().await.unwrap();
    let names: Vec<_> = usage.iter().map(|u| u.tenant.as_str().to_owned()).collect();
    assert!(
        names.contains(&"rls-a".to_owned()) && names.contains(&"rls-b".to_owned()),
        "{names:?}"
    );

    // The same role without the option sees nothing and writes nothing: it fails closed.
    let unbound = PgStore::connect_with(options_as(&login, &fresh)).await.unwrap();
    let unbound_a = unbound.tenant(tenant("rls-a"));
    let none: Vec<_> =
        unbound_a.read_all(ReadAllOptions::from_beginning()).try_collect().await.unwrap();
    assert!(none.is_empty());
    let refused = unbound_a
        .append(
            &StreamId::new("s-2").unwrap(),
            ExpectedVersion::NoStream,
            vec![event(9)],
            AppendOptions::default(),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Backend { .. })), "{refused:?}");

    unbound.pool().close().await;
    store.pool().close().await;
    a.pool().close().await;
    b.pool().close().await;
    drop_roles(&fresh, &login).await;
}

#[tokio::test]
async fn group_commit_writes_each_tenant_on_its_own_connections() {
    let fresh = FreshSchema::new().await;
    let login = app_role(&fresh).await;
    fresh.store.set_row_level_security(true).await.unwrap();
    let options = options_as(&login, &fresh)
        .row_level_security(true)
        .group_commit(true)
        .group_commit_batches(1);
    let store = PgStore::connect_with(options).await.unwrap();
    let (a, b) = (store.tenant(tenant("rls-a")), store.tenant(tenant("rls-b")));
    let mut writers = tokio::task::JoinSet::new();
    for n in 0..16u64 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        writers.spawn(async move {
            let stream = StreamId::new(format!("s-{n}")).unwrap();
            store
                .append(
                    &stream,
                    ExpectedVersion::NoStream,
                    vec![event(n)],
                    AppendOptions::default(),
                )
                .await
        });
    }
    while let Some(written) = writers.join_next().await {
        written.unwrap().unwrap();
    }
    let stats = store.group_commit_stats().unwrap();
    assert_eq!(stats.appends, 16);
    assert!(stats.batches < 16, "no batch held two appends: {stats:?}");
    for tenant_store in [&a, &b] {
        let read: Vec<_> =
            tenant_store.read_all(ReadAllOptions::from_beginning()).try_collect().await.unwrap();
        assert_eq!(read.len(), 8);
        assert!(read.iter().all(|event| &event.tenant == tenant_store.tenant()));
    }
    store.pool().close().await;
    a.pool().close().await;
    b.pool().close().await;
    drop_roles(&fresh, &login).await;
}

#[tokio::test]
async fn the_option_is_refused_where_it_would_not_hold() {
    let fresh = FreshSchema::new().await;
    let login = app_role(&fresh).await;
    // Not enabled on the tables yet.
    let error = PgStore::connect_with(options_as(&login, &fresh).row_level_security(true))
        .await
        .expect_err("policies not enabled");
    assert!(error.to_string().contains("set_row_level_security"), "{error}");
    // Enabled, but the role bypasses it (the superuser the tests run as).
    fresh.store.set_row_level_security(true).await.unwrap();
    let owner = PgStoreOptions::new(database_url())
        .schema(fresh.schema())
        .unwrap()
        .row_level_security(true);
    let error = PgStore::connect_with(owner).await.expect_err("a role that bypasses it");
    assert!(error.to_string().contains("bypasses"), "{error}");
    // A pool the application made cannot be bound per tenant.
    let error = PgStore::from_pool(
        fresh.store.pool().clone(),
        options_as(&login, &fresh).row_level_security(true),
    )
    .await
    .expect_err("from_pool");
    assert!(error.to_string().contains("connect_with"), "{error}");
    fresh.store.set_row_level_security(false).await.unwrap();
    assert!(!fresh.store.row_level_security().await.unwrap());
    drop_roles(&fresh, &login).await;
}
