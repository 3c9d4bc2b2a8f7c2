//! The bank's views under at-least-once delivery: a crash between handling and saving the
//! checkpoint delivers events again, and that changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use es::projection::{CheckpointStore, ProjectionRunner, VolatileCheckpoints};
use es::{MultiTenantStore, TenantId};
use examples::bank::read_models::{Balances, Statements};
use examples::bank::{Bank, BankStore};

async fn redelivered_events_change_nothing<S: BankStore>(store: S) {
    let bank = Bank::start(store.clone()).await;
    bank.open("a", "A", None, None).await.unwrap();
    bank.open("b", "B", None, None).await.unwrap();
    bank.deposit("a", 1_000, None).await.unwrap();
    bank.withdraw("a", 300, None).await.unwrap();
    bank.request_transfer("t", "a", "b", 200, None).await.unwrap();
    bank.settle(std::time::Duration::from_secs(30)).await.unwrap();
    bank.shutdown().await;

    let views = VolatileCheckpoints::new(store);
    let (balances, statements) = (Balances::default(), Statements::default());
    let mut balance_runner = ProjectionRunner::new(balances.clone(), views.clone());
    let mut statement_runner = ProjectionRunner::new(statements.clone(), views.clone());
    balance_runner.catch_up().await.unwrap();
    statement_runner.catch_up().await.unwrap();
    let once = (balances.all(), statements.lines("a", 100), statements.lines("b", 100));
    assert_eq!(once.0["a"].balance, 500);
    assert_eq!(once.0["b"].balance, 200);

    // The checkpoints are lost (a crash before the save): everything is delivered again.
    views.reset_checkpoint(&es::ProjectionName::new("balances").unwrap()).await.unwrap();
    views.reset_checkpoint(&es::ProjectionName::new("statements").unwrap()).await.unwrap();
    let again = ProjectionRunner::new(balances.clone(), views.clone()).catch_up().await.unwrap();
    ProjectionRunner::new(statements.clone(), views).catch_up().await.unwrap();
    assert!(again.handled >= 6, "the events came again: {again:?}");
    assert_eq!((balances.all(), statements.lines("a", 100), statements.lines("b", 100)), once);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    redelivered_events_change_nothing(es::memory::MemoryStore::new().tenant(TenantId::default()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let fresh = es::postgres::testing::FreshSchema::new().await;
    redelivered_events_change_nothing(fresh.default_tenant()).await;
}

/// The transfer process's commands carry the request's trail: every step's event names the
/// `transfer.requested` event as its cause and shares its correlation id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_steps_carry_correlation_and_causation() {
    use es::{EventStore, ReadStreamOptions, StreamId};
    use futures_util::TryStreamExt;
    let store = es::memory::MemoryStore::new().tenant(TenantId::default());
    let bank = Bank::start(store.clone()).await;
    bank.open("a", "A", None, None).await.unwrap();
    bank.open("b", "B", None, None).await.unwrap();
    bank.deposit("a", 1_000, None).await.unwrap();
    bank.request_transfer("t", "a", "b", 200, None).await.unwrap();
    bank.settle(std::time::Duration::from_secs(30)).await.unwrap();
    bank.shutdown().await;
    let read = |stream: &str| {
        let stream = StreamId::new(stream).unwrap();
        let store = store.clone();
        async move {
            store
                .read_stream(&stream, ReadStreamOptions::forward())
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
        }
    };
    let transfer = read("transfer-t").await;
    let requested = &transfer[0];
    assert_eq!(requested.event_type.as_str(), "transfer.requested");
    let cause = *requested.event_id.as_uuid();
    let steps: Vec<_> = transfer[1..]
        .iter()
        .chain(
            read("account-a").await.iter().filter(|e| e.event_type.as_str() == "account.withdrawn"),
        )
        .chain(
            read("account-b").await.iter().filter(|e| e.event_type.as_str() == "account.deposited"),
        )
        .cloned()
        .collect();
    assert!(steps.len() >= 3, "debit, credit and the transfer's own steps: {steps:?}");
    for step in steps {
        assert_eq!(step.metadata.causation_id, Some(cause), "{}", step.event_type);
        assert_eq!(step.metadata.correlation_id, Some(cause), "{}", step.event_type);
        assert_eq!(step.metadata.actor.as_deref(), Some("transfer-process"));
    }
}
