//! Subscriptions: catch up, then follow, in order, each event once.

use std::time::Duration;

use futures_util::StreamExt;

use super::fixtures::{append, batch, event_type, number, scoped, stream, typed};
use crate::store::SubscribeOptions;
use crate::{EventStore, ExpectedVersion, MultiTenantStore, RecordedEvent};

async fn next(events: &mut crate::EventStream) -> RecordedEvent {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the subscription delivers within 10 s")
        .expect("the subscription goes on")
        .expect("no store error")
}

/// A subscription delivers what is in the log from its position, then what is appended later,
/// in position order, each once; one started from a position skips what came before.
pub async fn subscription_catches_up_then_follows_live<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "subscribe");
    append(&store, &stream("a-1"), ExpectedVersion::Any, batch(0..10)).await;
    let mut events = store.subscribe(SubscribeOptions::from_beginning().page_size(3));
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(next(&mut events).await);
    }
    let writer = store.clone();
    let appends = tokio::spawn(async move {
        for n in 10..15 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            append(&writer, &stream("a-2"), ExpectedVersion::Any, batch(n..n + 1)).await;
        }
    });
    for _ in 0..5 {
        seen.push(next(&mut events).await);
    }
    appends.await.expect("appends");
    assert_eq!(seen.iter().map(number).collect::<Vec<_>>(), (0..15).collect::<Vec<_>>());
    assert!(seen.windows(2).all(|pair| pair[0].position < pair[1].position));
    let nothing = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
    assert!(nothing.is_err(), "nothing more until something is appended");

    let mut later = store.subscribe(SubscribeOptions::after(seen[11].position));
    assert_eq!(number(&next(&mut later).await), 12, "starts after its position");
}

/// A filtered subscription delivers only its types, keeps following while other types are
/// appended, and wakes for its own.
pub async fn filtered_subscription_follows_only_its_types<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "subscribe-types");
    let s = stream("a-1");
    append(&store, &s, ExpectedVersion::Any, vec![typed("t.wanted", 1), typed("t.other", 2)]).await;
    let mut events = store.subscribe(
        SubscribeOptions::from_beginning()
            .event_types([event_type("t.wanted")])
            .idle_wait(Duration::from_millis(50)),
    );
    assert_eq!(number(&next(&mut events).await), 1);
    for n in 3..6 {
        append(&store, &s, ExpectedVersion::Any, vec![typed("t.other", n)]).await;
    }
    let nothing = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(nothing.is_err(), "other types are not delivered");
    append(&store, &s, ExpectedVersion::Any, vec![typed("t.wanted", 6)]).await;
    let event = next(&mut events).await;
    assert_eq!((number(&event), event.event_type.as_str()), (6, "t.wanted"));
}
