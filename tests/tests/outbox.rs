//! The outbox relay on both backends: each message delivered once and in stream order, through a
//! sink that fails, refuses, goes down, or outlives a killed relay; several relays sharing the
//! partitions.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use es_core::outbox::{
    BreakerState, MemorySink, OutboxMessage, OutboxStore, Publication, Relay, RelayOptions, Sink,
    SinkError,
};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, Payload, StreamId, Subject,
    TenantId,
};

fn tenant() -> TenantId {
    TenantId::new("outbox").unwrap()
}

/// Appends `count` events to `stream`, each published, with payloads `"<stream>:<n>"` padded to
/// `size` bytes.
async fn publish<S: EventStore>(store: &S, stream: &str, from: u64, count: u64, size: usize) {
    let id = StreamId::new(stream).unwrap();
    for n in from..from + count {
        let event = EventData::new(
            EventType::new("test.published").unwrap(),
            Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
        );
        let body = format!("{stream}:{n}");
        let body = format!("{body:<size$}");
        let message = Publication::new(0, Subject::new("test.published").unwrap(), body);
        store
            .append(
                &id,
                ExpectedVersion::Any,
                vec![event],
                AppendOptions::default().publish(message),
            )
            .await
            .unwrap();
    }
}

/// The payload numbers delivered per stream, in delivery order.
fn by_stream(messages: &[OutboxMessage]) -> HashMap<String, Vec<u64>> {
    let mut streams: HashMap<String, Vec<u64>> = HashMap::new();
    for message in messages {
        let body = std::str::from_utf8(&message.payload).unwrap().trim_end();
        let (stream, n) = body.split_once(':').unwrap();
        streams.entry(stream.to_owned()).or_default().push(n.parse().unwrap());
    }
    streams
}

fn fast() -> RelayOptions {
    RelayOptions::default()
        .retry_delays(Duration::from_millis(1), Duration::from_millis(5))
        .lease_ttl(Duration::from_millis(300))
        .idle_wait(Duration::from_millis(20))
}

async fn drain<S: EventStore + OutboxStore, K: Sink>(relay: &mut Relay<S, K>) {
    for _ in 0..100 {
        let pass = relay.relay_once().await.unwrap();
        if pass.delivered == 0 && pass.failed == 0 && pass.parked == 0 && !pass.breaker_open {
            return;
        }
    }
    panic!("the relay did not drain the outbox in 100 passes");
}

/// Every message is delivered once, each stream's in version order, and the outbox is empty after.
async fn delivers_each_message_once_in_stream_order<S: EventStore + OutboxStore>(store: S) {
    for round in 0..4 {
        for stream in ["a-1", "b-2", "c-3", "d-4", "e-5"] {
            publish(&store, stream, round * 5, 5, 0).await;
        }
    }
    let sink = MemorySink::new();
    let mut relay = Relay::with_options(store.clone(), sink.clone(), fast().batch_size(7));
    drain(&mut relay).await;
    let delivered = sink.delivered();
    assert_eq!(delivered.len(), 100);
    for (stream, numbers) in by_stream(&delivered) {
        assert_eq!(numbers, (0..20).collect::<Vec<_>>(), "stream {stream} in order");
    }
    assert_eq!(sink.attempts(), 100, "nothing sent twice");
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered), (0, 100));
}

/// A message that fails leaves its stream's later messages for the next pass, so they cannot
/// overtake it; other streams go on.
async fn a_failed_message_is_not_overtaken_by_its_stream<S: EventStore + OutboxStore>(store: S) {
    publish(&store, "a-1", 0, 3, 0).await;
    publish(&store, "b-2", 0, 3, 0).await;
    let sink = MemorySink::new();
    let mut relay = Relay::with_options(store.clone(), sink.clone(), fast());
    sink.fail_next(1); // the first message of the first wave: a-1's first
    let pass = relay.relay_once().await.unwrap();
    assert_eq!((pass.delivered, pass.failed), (3, 1), "b-2 delivered whole, a-1 held back");
    assert!(!by_stream(&sink.delivered()).contains_key("a-1"), "nothing of a-1 overtook its first");
    drain(&mut relay).await;
    let streams = by_stream(&sink.delivered());
    assert_eq!(streams["a-1"], [0, 1, 2]);
    assert_eq!(streams["b-2"], [0, 1, 2]);
}

/// A message the sink refuses for good is parked with the reason; its stream goes on.
async fn a_refused_message_is_parked_and_its_stream_goes_on<S: EventStore + OutboxStore>(store: S) {
    publish(&store, "a-1", 0, 1, 0).await;
    publish(&store, "a-1", 1, 1, 100).await;
    publish(&store, "a-1", 2, 1, 0).await;
    let sink = MemorySink::new();
    sink.refuse_larger_than(50);
    let mut relay = Relay::with_options(store.clone(), sink.clone(), fast());
    drain(&mut relay).await;
    assert_eq!(by_stream(&sink.delivered())["a-1"], [0, 2]);
    let parked = store.parked_messages(10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].message.stream_version, 2);
    assert!(parked[0].reason.contains("too large"), "{}", parked[0].reason);
}

/// With the sink down the breaker opens after the threshold and the relay stops calling it;
/// appends go on; once the sink is back and the cool-down over, the backlog drains in order.
async fn the_breaker_opens_while_the_sink_is_down_and_the_backlog_drains<S>(store: S)
where
    S: EventStore + OutboxStore,
{
    publish(&store, "a-1", 0, 2, 0).await;
    let sink = MemorySink::new();
    sink.set_down(true);
    let options = fast().breaker(2, Duration::from_millis(200));
    let mut relay = Relay::with_options(store.clone(), sink.clone(), options);
    relay.relay_once().await.unwrap();
    assert_eq!(relay.breaker_state(), BreakerState::Closed);
    relay.relay_once().await.unwrap();
    assert_eq!(relay.breaker_state(), BreakerState::Open, "two failing passes open it");
    let attempts = sink.attempts();
    publish(&store, "a-1", 2, 3, 0).await;
    let pass = relay.relay_once().await.unwrap();
    assert!(pass.breaker_open);
    assert_eq!(sink.attempts(), attempts, "an open breaker leaves the sink alone");
    sink.set_down(false);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(relay.breaker_state(), BreakerState::HalfOpen);
    drain(&mut relay).await;
    assert_eq!(relay.breaker_state(), BreakerState::Closed);
    assert_eq!(by_stream(&sink.delivered())["a-1"], [0, 1, 2, 3, 4]);
    assert_eq!(store.outbox_stats().await.unwrap().pending, 0, "nothing lost");
}

/// A sink that acknowledges and then never lets the relay go on: the relay "dies" between the
/// acknowledgement and marking the messages delivered.
#[derive(Clone)]
struct AckThenHang(MemorySink);

impl Sink for AckThenHang {
    async fn publish(&self, messages: &[OutboxMessage]) -> Vec<Result<(), SinkError>> {
        self.0.publish(messages).await;
        std::future::pending().await
    }
}

/// A relay killed between the sink's acknowledgement and marking the rows: its successor takes
/// the lapsed lease and delivers again, the sink drops the repeats, each message arrives once.
async fn a_relay_killed_after_the_ack_is_delivered_once<S: EventStore + OutboxStore>(store: S) {
    publish(&store, "a-1", 0, 3, 0).await;
    let sink = MemorySink::new();
    let mut doomed = Relay::with_options(store.clone(), AckThenHang(sink.clone()), fast());
    let killed = tokio::time::timeout(Duration::from_millis(100), doomed.relay_once()).await;
    assert!(killed.is_err(), "the relay hung after the acknowledgement, and was killed");
    drop(doomed);
    assert_eq!(sink.delivered().len(), 1, "the first wave was acknowledged");
    assert_eq!(store.outbox_stats().await.unwrap().pending, 3, "but nothing marked");
    let mut successor = Relay::with_options(store.clone(), sink.clone(), fast());
    let pass = successor.relay_once().await.unwrap();
    assert_eq!(pass.partitions, 0, "the dead relay's lease has not lapsed yet");
    tokio::time::sleep(Duration::from_millis(350)).await;
    drain(&mut successor).await;
    assert_eq!(by_stream(&sink.delivered())["a-1"], [0, 1, 2], "each once, in order");
    assert!(sink.attempts() > 3, "the first was sent again, and dropped as a repeat");
    assert_eq!(store.outbox_stats().await.unwrap().pending, 0);
}

/// Two relays share the partitions, one is killed mid-way, the other takes its partitions over:
/// every message delivered, each stream in order.
async fn two_relays_share_the_work_and_survive_one_killed<S: EventStore + OutboxStore>(store: S) {
    let streams: Vec<String> = (0..12).map(|n| format!("s-{n}")).collect();
    let sink = MemorySink::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let spawn = |store: S, sink: MemorySink| {
        let mut stopped = stopped.clone();
        tokio::spawn(Relay::with_options(store, sink, fast().batch_size(5)).run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    };
    let first = spawn(store.clone(), sink.clone());
    let second = spawn(store.clone(), sink.clone());
    for round in 0..5 {
        for stream in &streams {
            publish(&store, stream, round * 4, 4, 0).await;
        }
        if round == 2 {
            // Both take their share within a few passes (the first took all partitions while
            // alone, and gives half up once it sees the second).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let leases = store.leases().await.unwrap();
                let owners: std::collections::HashSet<_> =
                    leases.iter().map(|lease| lease.owner).collect();
                if owners.len() == 2 && leases.len() == 16 {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "two relays share: {leases:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            first.abort();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.outbox_stats().await.unwrap().pending > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the survivor drains the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    second.await.unwrap();
    let delivered = by_stream(&sink.delivered());
    assert_eq!(delivered.len(), streams.len());
    for (stream, numbers) in delivered {
        assert_eq!(numbers, (0..20).collect::<Vec<_>>(), "stream {stream}: all, once, in order");
    }
}

tests::on_both_backends!(
    tenant: tenant();
    delivers_each_message_once_in_stream_order,
    a_failed_message_is_not_overtaken_by_its_stream,
    a_refused_message_is_parked_and_its_stream_goes_on,
    the_breaker_opens_while_the_sink_is_down_and_the_backlog_drains,
    a_relay_killed_after_the_ack_is_delivered_once,
    two_relays_share_the_work_and_survive_one_killed,
);
