//! The JetStream sink against a real NATS server (`NATS_URL`, default `nats://127.0.0.1:4222`;
//! `scripts/test.sh` starts one when none answers). Each test has a stream and subjects of its
//! own, deleted at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashMap;

use common::{client, unique};
use es_core::outbox::{OutboxStore, Publication, Relay, RelayOptions, Sink};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Payload,
    StreamId, Subject, TenantId,
};
use es_nats::{JetStreamSink, StreamConfig};

async fn publish<S: EventStore>(store: &S, stream: &str, n: u64, subject: &str, body: Vec<u8>) {
    let event = EventData::new(
        EventType::new("test.published").unwrap(),
        Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
    );
    let message = Publication::new(0, Subject::new(subject).unwrap(), body);
    store
        .append(
            &StreamId::new(stream).unwrap(),
            ExpectedVersion::Any,
            vec![event],
            AppendOptions::default().publish(message),
        )
        .await
        .unwrap();
}

async fn drain<S: EventStore + OutboxStore>(relay: &mut Relay<S, JetStreamSink>) {
    for _ in 0..50 {
        let pass = relay.relay_once().await.unwrap();
        if pass.delivered == 0 && pass.failed == 0 && pass.parked == 0 {
            return;
        }
    }
    panic!("the relay did not drain in 50 passes");
}

/// Relayed to JetStream: every message stored once, each stream's in order, with its event id
/// as `Nats-Msg-Id` and the standard headers.
#[tokio::test]
async fn the_relay_publishes_each_message_once_in_stream_order() {
    let (name, prefix) = unique();
    let client = client().await;
    let sink =
        JetStreamSink::new(client.clone(), StreamConfig::new(&name, [format!("{prefix}.>")]))
            .await
            .unwrap();
    let store = es_memory::MemoryStore::new().tenant(TenantId::new("nats").unwrap());
    for n in 0..10 {
        for stream in ["account-1", "account-2", "account-3"] {
            let body = format!("{stream}:{n}").into_bytes();
            publish(&store, stream, n, &format!("{prefix}.account.deposited"), body).await;
        }
    }
    let mut relay = Relay::with_options(store.clone(), sink.clone(), RelayOptions::default());
    drain(&mut relay).await;
    assert_eq!(store.outbox_stats().await.unwrap().delivered, 30);

    let context = async_nats::jetstream::new(client.clone());
    let mut stream = context.get_stream(&name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 30);
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    assert!(store.pending(&(0..16).collect::<Vec<_>>(), 100).await.unwrap().is_empty());
    for sequence in 1..=30 {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let headers = &message.headers;
        let id = headers.get("Nats-Msg-Id").unwrap().as_str().to_owned();
        assert_eq!(headers.get("Es-Event-Id").unwrap().as_str(), id);
        assert_eq!(headers.get("Es-Tenant").unwrap().as_str(), "nats");
        let body = std::str::from_utf8(&message.payload).unwrap();
        let (stream_id, n) = body.split_once(':').unwrap();
        assert_eq!(headers.get("Es-Stream").unwrap().as_str(), stream_id);
        seen.entry(stream_id.to_owned()).or_default().push(n.parse().unwrap());
    }
    for (stream_id, numbers) in &seen {
        assert_eq!(numbers, &(0..10).collect::<Vec<_>>(), "{stream_id} in order");
    }

    context.delete_stream(&name).await.unwrap();
}

/// The same message published twice (same event id) is stored once.
#[tokio::test]
async fn a_redelivered_message_is_dropped_by_the_duplicate_window() {
    let (name, prefix) = unique();
    let client = client().await;
    let sink =
        JetStreamSink::new(client.clone(), StreamConfig::new(&name, [format!("{prefix}.>")]))
            .await
            .unwrap();
    let store = es_memory::MemoryStore::new().tenant(TenantId::new("nats").unwrap());
    publish(&store, "account-1", 0, &format!("{prefix}.x"), b"once".to_vec()).await;
    let messages = store.pending(&(0..16).collect::<Vec<_>>(), 10).await.unwrap();
    for _ in 0..3 {
        let outcomes = sink.publish(&messages).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    }
    let context = async_nats::jetstream::new(client);
    let mut stream = context.get_stream(&name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1, "stored once");
    context.delete_stream(&name).await.unwrap();
}

/// What can never be published is parked with the reason (a subject the stream does not
/// capture, a message larger than the server takes); the stream's other messages go on.
#[tokio::test]
async fn unpublishable_messages_are_parked_and_the_rest_delivered() {
    let (name, prefix) = unique();
    let client = client().await;
    let max = client.max_payload();
    let sink =
        JetStreamSink::new(client.clone(), StreamConfig::new(&name, [format!("{prefix}.ok.>")]))
            .await
            .unwrap();
    let store = es_memory::MemoryStore::new().tenant(TenantId::new("nats").unwrap());
    publish(&store, "account-1", 0, &format!("{prefix}.ok.a"), b"first".to_vec()).await;
    publish(&store, "account-1", 1, &format!("{prefix}.elsewhere"), b"lost".to_vec()).await;
    publish(&store, "account-1", 2, &format!("{prefix}.ok.b"), vec![b'x'; max + 1]).await;
    publish(&store, "account-1", 3, &format!("{prefix}.ok.c"), b"last".to_vec()).await;
    let mut relay = Relay::with_options(store.clone(), sink, RelayOptions::default());
    drain(&mut relay).await;
    let parked = store.parked_messages(10).await.unwrap();
    let reasons: Vec<(u64, &str)> =
        parked.iter().map(|p| (p.message.stream_version, p.reason.as_str())).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].1.contains("not captured"), "{reasons:?}");
    assert!(reasons[1].1.contains("max payload"), "{reasons:?}");
    let context = async_nats::jetstream::new(client);
    let mut stream = context.get_stream(&name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    let last = stream.get_raw_message(2).await.unwrap();
    assert_eq!(&last.payload[..], b"last", "order kept among the delivered");
    context.delete_stream(&name).await.unwrap();
}

/// An existing stream that does not capture the subjects asked for is refused at start.
#[tokio::test]
async fn a_stream_with_other_subjects_is_refused_at_start() {
    let (name, prefix) = unique();
    let client = client().await;
    JetStreamSink::new(client.clone(), StreamConfig::new(&name, [format!("{prefix}.a.>")]))
        .await
        .unwrap();
    let error =
        JetStreamSink::new(client.clone(), StreamConfig::new(&name, [format!("{prefix}.b.>")]))
            .await
            .unwrap_err();
    assert!(error.to_string().contains("does not capture"), "{error}");
    async_nats::jetstream::new(client).delete_stream(&name).await.unwrap();
}
