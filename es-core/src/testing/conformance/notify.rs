//! Waiting for new events without polling.

use std::time::{Duration, Instant};

use super::fixtures::{append, batch, scoped, stream};
use crate::{EventStore, ExpectedVersion, MultiTenantStore, Position};

/// A waiter wakes when an append commits, well before its timeout.
pub async fn wait_for_events_wakes_on_append<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let first = append(&store, &stream("order-1"), ExpectedVersion::Any, batch(0..1)).await;
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let head = store
                .wait_for_events(first.last_position, Duration::from_secs(30))
                .await
                .expect("wait");
            (head, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = append(&store, &stream("order-2"), ExpectedVersion::Any, batch(1..2)).await;
    let (head, elapsed) = waiter.await.expect("waiter panicked");
    assert!(head >= second.last_position, "the waiter must return the new head, got {head}");
    assert!(
        elapsed < Duration::from_secs(10),
        "the waiter must wake on the append, not the timeout ({elapsed:?})"
    );
}

/// Without appends, a waiter returns the unchanged head after its timeout.
pub async fn wait_for_events_times_out_without_append<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let started = Instant::now();
    let head =
        store.wait_for_events(Position::BEGINNING, Duration::from_millis(150)).await.expect("wait");
    assert_eq!(head, Position::BEGINNING);
    assert!(
        started.elapsed() >= Duration::from_millis(140),
        "returned early: {:?}",
        started.elapsed()
    );
}

/// A waiter whose position is already behind the head returns at once.
pub async fn wait_for_events_returns_at_once_when_head_is_past<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let result = append(&store, &stream("order-1"), ExpectedVersion::Any, batch(0..2)).await;
    let started = Instant::now();
    let head =
        store.wait_for_events(Position::BEGINNING, Duration::from_secs(30)).await.expect("wait");
    assert_eq!(head, result.last_position);
    assert!(started.elapsed() < Duration::from_secs(5));
}
