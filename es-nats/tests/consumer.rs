//! The consumer side against a real JetStream and PostgreSQL: each message's effect applied
//! once, in the inbox's transaction, through redeliveries, a consumer killed before its
//! acknowledgements, and a message that keeps failing (parked).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use async_nats::jetstream;
use common::{client, unique};
use es_core::inbox::{Delivery, Inbox};
use es_core::outbox::{Publication, Relay, RelayOptions};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Payload,
    ProjectionName, StreamId, Subject, TenantId,
};
use es_nats::{
    ConsumerConfig, HandlerError, InboxConsumer, JetStreamSink, MessageHandler, StreamConfig,
};
use es_postgres::InboxTransaction;
use es_postgres::testing::FreshSchema;
use futures_util::StreamExt;

/// Publishes `count` deposits (amounts 1..=count) through the outbox and a relay.
async fn publish(client: &async_nats::Client, stream: &str, prefix: &str, count: i64) {
    let sink =
        JetStreamSink::new(client.clone(), StreamConfig::new(stream, [format!("{prefix}.>")]))
            .await
            .unwrap();
    let store = es_memory::MemoryStore::new().tenant(TenantId::new("bank").unwrap());
    for amount in 1..=count {
        let event = EventData::new(
            EventType::new("account.deposited").unwrap(),
            Payload::from_value(&serde_json::json!({ "amount": amount })).unwrap(),
        );
        let body = serde_json::json!({ "amount": amount }).to_string();
        let message =
            Publication::new(0, Subject::new(format!("{prefix}.deposited")).unwrap(), body);
        store
            .append(
                &StreamId::new(format!("account-{}", amount % 3)).unwrap(),
                ExpectedVersion::Any,
                vec![event],
                AppendOptions::default().publish(message),
            )
            .await
            .unwrap();
    }
    let mut relay = Relay::with_options(store, sink, RelayOptions::default());
    while relay.relay_once().await.unwrap().delivered > 0 {}
}

/// Writes each deposit into a ledger (no unique key: a second application would show as a
/// second row); refuses one amount.
struct Ledger {
    refuse: Option<i64>,
}

impl MessageHandler<InboxTransaction> for Ledger {
    async fn handle(
        &mut self,
        tx: &mut InboxTransaction,
        message: &Delivery,
    ) -> Result<(), HandlerError> {
        let body: serde_json::Value = serde_json::from_slice(&message.payload)
            .map_err(|error| HandlerError::with_source("not JSON", error))?;
        let amount = body["amount"].as_i64().ok_or_else(|| HandlerError::new("no amount"))?;
        sqlx::query("INSERT INTO ledger (message_id, amount) VALUES ($1, $2)")
            .bind(&message.message_id)
            .bind(amount)
            .execute(&mut **tx)
            .await
            .map_err(|error| HandlerError::with_source("insert failed", error))?;
        if self.refuse == Some(amount) {
            return Err(HandlerError::new(format!("amount {amount} refused")));
        }
        Ok(())
    }
}

async fn database() -> FreshSchema {
    let fresh = FreshSchema::new().await;
    sqlx::query("CREATE TABLE ledger (message_id text NOT NULL, amount bigint NOT NULL)")
        .execute(fresh.store.pool())
        .await
        .unwrap();
    fresh
}

async fn ledger(fresh: &FreshSchema) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT message_id), coalesce(sum(amount), 0)::bigint FROM ledger",
    )
    .fetch_one(fresh.store.pool())
    .await
    .unwrap()
}

async fn wait_for(fresh: &FreshSchema, rows: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ledger(fresh).await.0 < rows {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer applies {rows} messages: {:?}",
            ledger(fresh).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A consumer killed after committing five effects but before acknowledging them: the server
/// delivers those five again, the inbox finds them applied, and every deposit is in the ledger
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_is_applied_once_through_redeliveries() {
    let (stream, prefix) = unique();
    let client = client().await;
    publish(&client, &stream, &prefix, 20).await;
    let fresh = database().await;
    let name = ProjectionName::new("ledger").unwrap();
    let config = ConsumerConfig::new(&stream, name.clone()).ack_wait(Duration::from_secs(1));

    // The first instance: applies five messages and dies before acknowledging them.
    let consumer = InboxConsumer::new(
        client.clone(),
        config.clone(),
        fresh.store.clone(),
        Ledger { refuse: None },
    )
    .await
    .unwrap();
    drop(consumer);
    let context = jetstream::new(client.clone());
    let raw: jetstream::consumer::PullConsumer =
        context.get_stream(&stream).await.unwrap().get_consumer(name.as_str()).await.unwrap();
    let mut batch = raw.fetch().max_messages(5).messages().await.unwrap();
    let mut handler = Ledger { refuse: None };
    let mut died_with = 0;
    while let Some(message) = batch.next().await {
        let message = message.unwrap();
        let id = message.headers.as_ref().unwrap().get("Nats-Msg-Id").unwrap().as_str().to_owned();
        let delivery = Delivery {
            message_id: id.clone(),
            subject: message.subject.as_str().to_owned(),
            payload: message.payload.clone(),
            headers: es_core::outbox::Headers::new(),
            deliveries: 1,
        };
        let mut tx = fresh.store.begin(&name, &id).await.unwrap().unwrap();
        handler.handle(&mut tx, &delivery).await.unwrap();
        fresh.store.commit(tx).await.unwrap();
        died_with += 1; // and no acknowledgement
    }
    assert_eq!(died_with, 5);
    assert_eq!(ledger(&fresh).await.0, 5);

    // The restarted instance: applies the other fifteen, finds the five applied.
    let consumer =
        InboxConsumer::new(client.clone(), config, fresh.store.clone(), Ledger { refuse: None })
            .await
            .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(consumer.run(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    wait_for(&fresh, 20).await;
    // Past the acknowledgement wait: the five unacknowledged ones came again and changed nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.send_replace(true);
    running.await.unwrap();
    assert_eq!(ledger(&fresh).await, (20, 20, (1..=20).sum()), "each deposit once");
    let info = context
        .get_stream(&stream)
        .await
        .unwrap()
        .get_consumer::<jetstream::consumer::pull::Config>(name.as_str())
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.num_ack_pending, 0, "every message acknowledged in the end");
    context.delete_stream(&stream).await.unwrap();
}

/// A message whose handler keeps failing is rolled back each time (no partial effect), delivered
/// `max_deliveries` times, then parked in the inbox with its error; the others are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_is_retried_then_parked() {
    let (stream, prefix) = unique();
    let client = client().await;
    publish(&client, &stream, &prefix, 6).await;
    let fresh = database().await;
    let name = ProjectionName::new("ledger").unwrap();
    let config = ConsumerConfig::new(&stream, name.clone())
        .max_deliveries(3)
        .retry_delay(Duration::from_millis(20));
    let consumer =
        InboxConsumer::new(client.clone(), config, fresh.store.clone(), Ledger { refuse: Some(4) })
            .await
            .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(consumer.run(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fresh.store.parked(&name).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the failing message is parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for(&fresh, 5).await;
    stop.send_replace(true);
    running.await.unwrap();
    assert_eq!(ledger(&fresh).await, (5, 5, 21 - 4), "the others once; nothing of the refused one");
    let parked = fresh.store.parked(&name).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].delivery.deliveries, 3);
    assert!(parked[0].error.contains("amount 4 refused"), "{}", parked[0].error);
    jetstream::new(client).delete_stream(&stream).await.unwrap();
}

/// Two deliveries of one message at once: the second waits for the first's transaction and
/// finds the message applied; after a rollback it applies it itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_message_apply_it_once() {
    let fresh = database().await;
    let name = ProjectionName::new("ledger").unwrap();
    let first = fresh.store.begin(&name, "m-1").await.unwrap().unwrap();
    let inbox = fresh.store.clone();
    let second = tokio::spawn(async move {
        inbox.begin(&ProjectionName::new("ledger").unwrap(), "m-1").await.map(|tx| tx.is_some())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second waits while the first is open");
    fresh.store.commit(first).await.unwrap();
    assert!(!second.await.unwrap().unwrap(), "then finds it applied");

    let rolled_back = fresh.store.begin(&name, "m-2").await.unwrap().unwrap();
    let inbox = fresh.store.clone();
    let second = tokio::spawn(async move {
        inbox.begin(&ProjectionName::new("ledger").unwrap(), "m-2").await.map(|tx| tx.is_some())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(rolled_back);
    assert!(second.await.unwrap().unwrap(), "after a rollback the second applies it");
}
