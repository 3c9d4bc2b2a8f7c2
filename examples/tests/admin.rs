//! The admin CLI against a PostgreSQL store the bank wrote (the CLI is PostgreSQL-only: the
//! in-memory store keeps nothing to administer). Checks outputs and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::Duration;

use es::projection::ProjectionLocks;
use examples::bank::Bank;

fn admin(schema: &str, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bank-admin"))
        .args(["--database-url", &es::postgres::testing::database_url(), "--schema", schema])
        .env("BANK_MASTER_KEYS", es::postgres::testing::TEST_MASTER_KEYS)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap(), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_inspect_verify_and_rebuild() {
    let fresh = es::postgres::testing::FreshSchema::new().await;
    let store = fresh.default_tenant();
    let bank = Bank::start(store.clone()).await;
    bank.open("ops-1", "Ops", None, None).await.unwrap();
    bank.open("ops-2", "Ops", None, None).await.unwrap();
    for _ in 0..60 {
        bank.deposit("ops-1", 10, None).await.unwrap();
    }
    bank.request_transfer("t1", "ops-1", "ops-2", 250, None).await.unwrap();
    bank.settle(Duration::from_secs(30)).await.unwrap();
    assert!(bank.transfer("t1").await.unwrap().state.status.is_final());
    bank.shutdown().await;
    let schema = fresh.schema();

    let (code, out) = admin(schema, &["migrate"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = admin(schema, &["stats"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("account.deposited") && out.contains("streams        3"), "{out}");

    let (code, out) = admin(schema, &["projections", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("transfer_process"), "{out}");

    let (code, out) = admin(schema, &["snapshots", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 snapshots verified, 0 bad"), "{out}");

    let (code, out) = admin(schema, &["parked", "list", "transfer_process"]);
    assert_eq!((code, out.contains("0 parked events")), (0, true), "{out}");

    let (code, out) = admin(schema, &["projections", "rebuild", "transfer_process"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rebuilt"), "{out}");

    let (code, out) = admin(schema, &["projections", "reset", "transfer_process"]);
    assert_eq!(code, 2, "reset without --yes is refused: {out}");

    // Another process runs the projection: the CLI does not rebuild under it.
    let lock = store
        .try_lock(&es::ProjectionName::new("transfer_process").unwrap())
        .await
        .unwrap()
        .unwrap();
    let (code, out) = admin(schema, &["projections", "rebuild", "transfer_process"]);
    assert_eq!(code, 4, "{out}");
    drop(lock);

    // Unknown projection names are usage errors (exit 2), whatever the subcommand.
    for args in [
        &["projections", "rebuild", "balances"][..],
        &["projections", "reset", "nope", "--yes"],
        &["parked", "list", "nope"],
        &["parked", "replay", "nope"],
    ] {
        let (code, out) = admin(schema, args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains("unknown projection"), "{out}");
    }
    // A name no projection can have is refused by its type before any query, with the rule.
    for args in [
        &["parked", "list", "x'; DROP TABLE checkpoints; --"][..],
        &["projections", "reset", "bälances", "--yes"],
        &["parked", "replay", ""],
    ] {
        let (code, out) = admin(schema, args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains("projection name"), "{args:?}: {out}");
    }

    // After a reset the projection has no checkpoint: status still lists it, lagging by the
    // whole log, and --max-lag fails.
    let (code, out) = admin(schema, &["projections", "reset", "transfer_process", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = admin(schema, &["projections", "status", "--max-lag", "10"]);
    assert_eq!(code, 3, "a projection behind by the whole log fails the check: {out}");
    assert!(out.contains("transfer_process"), "{out}");
    let (code, out) = admin(schema, &["projections", "rebuild", "transfer_process"]);
    assert_eq!(code, 0, "{out}");

    // A damaged snapshot fails verification with exit code 3.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {schema}.snapshots SET checksum = decode(repeat('00', 32), 'hex')"
    )))
    .execute(&sqlx::PgPool::connect(&es::postgres::testing::database_url()).await.unwrap())
    .await
    .unwrap();
    let (code, out) = admin(schema, &["snapshots", "verify"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("checksum does not match"), "{out}");

    // A snapshot with a valid checksum that is not of this stream's history (a snapshots table
    // restored from another point in time): the event it claims is not the stream's.
    let pool = sqlx::PgPool::connect(&es::postgres::testing::database_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {schema}.snapshots")))
        .execute(&pool)
        .await
        .unwrap();
    let stream = es::StreamId::new("account-ops-1").unwrap();
    let state = es::Payload::from_value(&serde_json::json!({
        "open": true, "closed": false, "owner": "Ops", "balance": 1_000_000
    }))
    .unwrap();
    let restored = es::snapshot::Snapshot::new("account", stream, 50, es::EventId::new(), 1, state);
    es::snapshot::SnapshotStore::save_snapshot(&store, restored).await.unwrap();
    let (code, out) = admin(schema, &["snapshots", "verify"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("does not hold the event the snapshot was taken at"), "{out}");
}

/// Operators forget an account's owner and read the audit trail, list tenants with their usage
/// and set limits live: the next append over a limit is refused with the limit named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_forget_subjects_and_set_quotas() {
    let fresh = es::postgres::testing::FreshSchema::new().await;
    let bank = Bank::start(fresh.default_tenant()).await;
    bank.open("ada", "Ada Lovelace", Some("ada@example.com"), None).await.unwrap();
    bank.deposit("ada", 100, None).await.unwrap();
    let schema = fresh.schema();

    let (code, out) =
        admin(schema, &["subjects", "forget", "ada", "--reason", "ticket 9", "--actor", "op:1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("owner forgotten now"), "{out}");
    let (code, out) =
        admin(schema, &["subjects", "forget", "ada", "--reason", "ticket 9", "--actor", "op:1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("owner forgotten before"), "{out}");
    let (code, out) = admin(schema, &["subjects", "audit", "ada"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ticket 9") && out.contains("1 forgotten subjects"), "{out}");
    assert!(!fresh.stored_text().await.contains("Ada Lovelace"));
    let (code, out) =
        admin(schema, &["subjects", "forget", "nobody", "--reason", "r", "--actor", "a"]);
    assert_eq!(code, 2, "{out}");

    let (code, out) = admin(schema, &["tenants", "list"]);
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|line| line.starts_with("default")).expect("the tenant is listed");
    let events: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (code, out) =
        admin(schema, &["tenants", "set-limits", "default", "--events", &events.to_string()]);
    assert_eq!(code, 0, "{out}");
    // The CLI is another process: the service sees limits set there within its quota refresh
    // interval (250 ms, PgStoreOptions::quota_sync_interval).
    let refresh = std::time::Duration::from_millis(350);
    tokio::time::sleep(refresh).await;
    match bank.deposit("ada", 1, None).await {
        Err(examples::bank::BankError::Store(es::StoreError::QuotaExceeded(exceeded))) => {
            assert_eq!((exceeded.quota, exceeded.limit), (es::quota::Quota::Events, events));
        }
        other => panic!("expected the events quota, got {other:?}"),
    }
    let (code, out) = admin(schema, &["tenants", "set-limits", "default"]);
    assert_eq!(code, 0, "{out}");
    tokio::time::sleep(refresh).await;
    bank.deposit("ada", 1, None).await.unwrap();

    // Row-level security: on, seen on, off (the owner the tests run as bypasses it, so the
    // service goes on meanwhile; es-postgres/tests/rls.rs tests what it enforces).
    for (action, state) in [("status", "off"), ("on", "on"), ("status", "on"), ("off", "off")] {
        let (code, out) = admin(schema, &["tenants", "row-level-security", action]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!("row-level security: {state}")), "{action}: {out}");
    }
    bank.shutdown().await;
}
