//! JetStream going away under a running relay, on a NATS server of the test's own (a private
//! `nats-server` on a free loopback port, never the shared one): the relay backs off and opens its
//! breaker, parks nothing, appends go on, and once the server is back the backlog drains in order.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use es_core::outbox::{BreakerState, OutboxStore, Publication, Relay, RelayOptions};
use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, MultiTenantStore, Payload,
    StreamId, Subject, TenantId,
};
use es_nats::{JetStreamSink, StreamConfig};

/// A `nats-server -js` of the test's own; killed when dropped.
struct PrivateNats {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("es-nats-fault-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self { port, dir, child: None };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "nats-server must be installed (Debian: nats-server; scripts/test.sh installs it)",
            );
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the private nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "the server is down"
        );
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn publish<S: EventStore>(store: &S, stream: &str, n: u64) {
    let event = EventData::new(
        EventType::new("test.published").unwrap(),
        Payload::from_value(&serde_json::json!({ "n": n })).unwrap(),
    );
    let message =
        Publication::new(0, Subject::new("fault.published").unwrap(), format!("{stream}:{n}"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_down_opens_the_breaker_parks_nothing_and_the_backlog_drains_in_order() {
    let mut server = PrivateNats::start();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(1))
        .connect(server.url())
        .await
        .unwrap();
    let sink = JetStreamSink::new(
        client.clone(),
        StreamConfig::new("FAULT", ["fault.>"]).ack_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let store = es_memory::MemoryStore::new().tenant(TenantId::new("fault").unwrap());
    let options = RelayOptions::default()
        .retry_delays(Duration::from_millis(10), Duration::from_millis(50))
        .breaker(3, Duration::from_millis(300));
    let mut relay = Relay::with_options(store.clone(), sink, options);
    for n in 0..5 {
        publish(&store, "a-1", n).await;
    }
    assert_eq!(relay.relay_once().await.unwrap().delivered, 5);

    server.kill();
    for n in 5..10 {
        publish(&store, "a-1", n).await;
        publish(&store, "b-2", n).await;
    }
    let mut passes = 0;
    while relay.breaker_state() != BreakerState::Open {
        let pass = relay.relay_once().await.unwrap();
        assert_eq!((pass.delivered, pass.parked), (0, 0), "nothing delivered, nothing parked");
        passes += 1;
        assert!(passes <= 3, "the breaker opens after 3 failing passes");
    }
    assert_eq!(store.outbox_stats().await.unwrap().pending, 10, "appends went on; nothing lost");
    assert!(relay.relay_once().await.unwrap().breaker_open);

    server.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.outbox_stats().await.unwrap().pending > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the backlog drains once NATS is back");
        let _ = relay.relay_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(relay.breaker_state(), BreakerState::Closed);
    assert_eq!(store.parked_messages(10).await.unwrap().len(), 0, "an outage parks nothing");

    // What JetStream holds: each message once, each stream in order.
    let context = async_nats::jetstream::new(client);
    let mut stream = context.get_stream("FAULT").await.unwrap();
    let stored = stream.info().await.unwrap().state.messages;
    assert_eq!(stored, 15);
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    for sequence in 1..=stored {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let body = std::str::from_utf8(&message.payload).unwrap();
        let (name, n) = body.split_once(':').unwrap();
        seen.entry(name.to_owned()).or_default().push(n.parse().unwrap());
    }
    assert_eq!(seen["a-1"], (0..10).collect::<Vec<_>>());
    assert_eq!(seen["b-2"], (5..10).collect::<Vec<_>>());
}
