//! The bank publishes, a downstream service consumes: account and transfer outcomes go through
//! the outbox and a relay to a real JetStream, and `Notifications` records each once in its own
//! PostgreSQL, on both of the bank's backends. Needs `NATS_URL` (default `nats://127.0.0.1:4222`;
//! `scripts/test.sh` starts a server).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use es::nats::{ConsumerConfig, InboxConsumer, JetStreamSink, StreamConfig, async_nats};
use es::outbox::{Relay, RelayOptions};
use es::postgres::testing::FreshSchema;
use es::{MultiTenantStore, ProjectionName, TenantId};
use examples::bank::notifications::Notifications;
use examples::bank::publish::PublicEvents;
use examples::bank::{Bank, BankStore};

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn notifications(consumer_db: &FreshSchema) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT subject, message_id, count(*) OVER (PARTITION BY message_id) FROM notifications ORDER BY id",
    )
    .fetch_all(consumer_db.store.pool())
    .await
    .unwrap()
}

async fn publishes_each_outcome_once<S: BankStore>(store: S) {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let (stream, prefix) = (format!("BANK_{}", &unique[20..]), format!("bank{}", &unique[20..]));
    let client = async_nats::connect(nats_url()).await.unwrap_or_else(|error| {
        panic!("NATS is not reachable at {} ({error}); scripts/test.sh starts one", nats_url())
    });
    let public = PublicEvents::new(&prefix).unwrap();
    let sink = JetStreamSink::new(client.clone(), StreamConfig::new(&stream, [public.subjects()]))
        .await
        .unwrap();
    let bank = Bank::start_publishing(store.clone(), Some(public)).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = {
        let mut stopped = stopped.clone();
        let options = RelayOptions::default().idle_wait(Duration::from_millis(100));
        tokio::spawn(Relay::with_options(store.clone(), sink, options).run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    };
    // The downstream service, with its own database.
    let consumer_db = FreshSchema::new().await;
    Notifications::create_table(consumer_db.store.pool()).await.unwrap();
    let consumer = InboxConsumer::new(
        client.clone(),
        ConsumerConfig::new(&stream, ProjectionName::new("notifications").unwrap()),
        consumer_db.store.clone(),
        Notifications,
    )
    .await
    .unwrap();
    let consuming = {
        let mut stopped = stopped.clone();
        tokio::spawn(consumer.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    };

    bank.open("a", "Ada Lovelace", Some("ada@example.com"), None).await.unwrap();
    bank.open("b", "Bob", None, None).await.unwrap();
    bank.deposit("a", 1_000, Some("deposit-1")).await.unwrap();
    bank.deposit("a", 1_000, Some("deposit-1")).await.unwrap(); // a retry: nothing new
    bank.request_transfer("t1", "a", "b", 400, None).await.unwrap();
    bank.request_transfer("t2", "b", "a", 10_000, None).await.unwrap(); // b cannot pay
    bank.settle(Duration::from_secs(30)).await.unwrap();
    // opened ×2, deposited, (t1) withdrawn + deposited + completed, (t2) failed.
    let expected = 7;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while notifications(&consumer_db).await.len() < expected {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", notifications(&consumer_db).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = notifications(&consumer_db).await;
    assert_eq!(seen.len(), expected, "{seen:?}");
    assert!(seen.iter().all(|(_, _, copies)| *copies == 1), "each message recorded once: {seen:?}");
    let mut subjects: Vec<String> =
        seen.iter().map(|(subject, _, _)| subject.replace(&prefix, "bank")).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "bank.account.deposited",
            "bank.account.deposited",
            "bank.account.opened",
            "bank.account.opened",
            "bank.account.withdrawn",
            "bank.transfer.completed",
            "bank.transfer.failed",
        ]
    );
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body::text FROM notifications")
        .fetch_all(consumer_db.store.pool())
        .await
        .unwrap();
    assert!(bodies.iter().all(|body| !body.contains("Ada")), "no personal data leaves the bank");
    assert_eq!(store.outbox_stats().await.unwrap().pending, 0);

    stop.send_replace(true);
    relay.await.unwrap();
    consuming.await.unwrap();
    bank.shutdown().await;
    async_nats::jetstream::new(client).delete_stream(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    publishes_each_outcome_once(es::memory::MemoryStore::new().tenant(TenantId::default())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let fresh = FreshSchema::new().await;
    publishes_each_outcome_once(fresh.tenant(TenantId::default())).await;
}
