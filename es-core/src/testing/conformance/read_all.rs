//! Reading the tenant's global log.

use super::fixtures::{
    append, assert_strictly_increasing_positions, batch, collect, event_type, numbers, read_all,
    scoped, stream, typed,
};
use crate::{EventStore, ExpectedVersion, LogEvent, MultiTenantStore, Position, ReadAllOptions};

/// `read_all` returns events in the order their appends committed, at the positions reported.
pub async fn read_all_order_equals_commit_order<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let mut expected = Vec::new();
    let mut positions = Vec::new();
    for n in 0..12u64 {
        let s = stream(&format!("account-{}", n % 3));
        let result = append(&store, &s, ExpectedVersion::Any, batch(n * 2..n * 2 + 2)).await;
        expected.extend([n * 2, n * 2 + 1]);
        positions.push((result.first_position, result.last_position));
    }
    let all = read_all(&store).await;
    assert_eq!(numbers(&all), expected);
    assert_strictly_increasing_positions(&all);
    for (pair, (first, last)) in all.chunks(2).zip(positions) {
        assert_eq!((pair[0].position, pair[1].position), (first, last));
    }
}

/// Reading after a position returns exactly the events after it.
pub async fn read_all_after_position_resumes_from_middle<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    append(&store, &stream("order-1"), ExpectedVersion::Any, batch(0..10)).await;
    let all = read_all(&store).await;
    let after_fourth = collect(store.read_all(ReadAllOptions::after(all[3].position))).await;
    assert_eq!(numbers(&after_fourth), [4, 5, 6, 7, 8, 9]);
    let after_last = collect(store.read_all(ReadAllOptions::after(all[9].position))).await;
    assert!(after_last.is_empty());
    // A position between two events (positions need not be contiguous) resumes after it too.
    let between = Position::new(all[3].position.value() + 1);
    let resumed = collect(store.read_all(ReadAllOptions::after(between))).await;
    assert!(resumed.iter().all(|event| event.position > between));
    assert_eq!(resumed.last().map(|event| event.position), Some(all[9].position));
}

/// A type filter returns only events of those types, still in position order.
pub async fn read_all_filters_by_event_type<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let events =
        (0..12).map(|n| typed(["test.a", "test.b", "test.c"][(n % 3) as usize], n)).collect();
    append(&store, &s, ExpectedVersion::Any, events).await;
    let only = |types: &[&str]| {
        ReadAllOptions::from_beginning().event_types(types.iter().map(|t| event_type(t)))
    };
    assert_eq!(numbers(&collect(store.read_all(only(&["test.b"]))).await), [1, 4, 7, 10]);
    assert_eq!(
        numbers(&collect(store.read_all(only(&["test.a", "test.c"]).page_size(2))).await),
        [0, 2, 3, 5, 6, 8, 9, 11]
    );
    assert!(collect(store.read_all(only(&["test.none"]))).await.is_empty());
    assert!(collect(store.read_all(only(&[]))).await.is_empty());
}

/// A filtered read finds a rare type far into the log: 20,000 events of other types before it
/// (more than any backend's scan window per page), and a reader that gives up on a page with no
/// match would end early and miss it. Found by mutation testing of es-memory.
pub async fn read_all_filter_finds_a_rare_type_far_into_the_log<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("busy-1");
    for chunk in 0..20u64 {
        let events =
            (chunk * 1_000..(chunk + 1) * 1_000).map(|n| typed("test.common", n)).collect();
        append(&store, &s, ExpectedVersion::Any, events).await;
    }
    append(&store, &s, ExpectedVersion::Any, vec![typed("test.rare", 99_999)]).await;
    for page_size in [1, 100, 1_000] {
        let rare = ReadAllOptions::from_beginning()
            .event_types([event_type("test.rare")])
            .page_size(page_size);
        assert_eq!(
            numbers(&collect(store.read_all(rare)).await),
            [99_999],
            "page size {page_size}: the rare event must be found"
        );
    }
}

/// Limits and page sizes: every event once, never more than the limit.
pub async fn read_all_with_limit_and_small_pages<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    for n in 0..10 {
        append(
            &store,
            &stream(&format!("order-{n}")),
            ExpectedVersion::Any,
            batch(n * 5..n * 5 + 5),
        )
        .await;
    }
    let paged = collect(store.read_all(ReadAllOptions::from_beginning().page_size(3))).await;
    assert_eq!(numbers(&paged), (0..50).collect::<Vec<_>>());
    let limited =
        collect(store.read_all(ReadAllOptions::from_beginning().page_size(3).limit(7))).await;
    assert_eq!(numbers(&limited), (0..7).collect::<Vec<_>>());
    let single =
        collect(store.read_all(ReadAllOptions::from_beginning().page_size(1).limit(1))).await;
    assert_eq!(numbers(&single), [0]);
    assert!(collect(store.read_all(ReadAllOptions::from_beginning().limit(0))).await.is_empty());
    // A page size of 0, set on the public field, must still make progress (as a page of 1).
    let mut zero = ReadAllOptions::from_beginning().limit(4);
    zero.page_size = 0;
    assert_eq!(numbers(&collect(store.read_all(zero)).await), [0, 1, 2, 3]);
}

/// Reading after the head, or far past it, returns nothing.
pub async fn read_all_past_head_is_empty<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    assert!(read_all(&store).await.is_empty());
    append(&store, &stream("order-1"), ExpectedVersion::Any, batch(0..3)).await;
    let head = store.head_position().await.expect("head");
    assert!(collect(store.read_all(ReadAllOptions::after(head))).await.is_empty());
    assert!(
        collect(store.read_all(ReadAllOptions::after(Position::new(u64::MAX)))).await.is_empty()
    );
}

/// The head is the position of the last event, and `BEGINNING` before any.
pub async fn head_position_tracks_appends<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    assert_eq!(store.head_position().await.expect("head"), Position::BEGINNING);
    let first = append(&store, &stream("order-1"), ExpectedVersion::Any, batch(0..2)).await;
    assert_eq!(store.head_position().await.expect("head"), first.last_position);
    let second = append(&store, &stream("order-2"), ExpectedVersion::Any, batch(2..3)).await;
    assert_eq!(store.head_position().await.expect("head"), second.last_position);
    assert_eq!(
        read_all(&store).await.last().map(|event| event.position),
        Some(second.last_position)
    );
}

/// A log many pages long is read completely and in order.
pub async fn read_all_pages_through_a_large_log<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    for n in 0..50 {
        append(
            &store,
            &stream(&format!("order-{}", n % 7)),
            ExpectedVersion::Any,
            batch(n * 100..n * 100 + 100),
        )
        .await;
    }
    let all = collect(store.read_all(ReadAllOptions::from_beginning().page_size(128))).await;
    assert_eq!(numbers(&all), (0..5_000).collect::<Vec<_>>());
    assert_strictly_increasing_positions(&all);
}

/// `replay_all` returns exactly `read_all`'s events (position, type, schema version, payload) for
/// the same options: from the beginning, after a position between two events, filtered by type,
/// limited with small pages, past the head; never another tenant's.
pub async fn replay_all_matches_read_all<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let other = scoped(&backend, "b");
    for n in 0..30u64 {
        let event = typed(["test.a", "test.b", "test.c"][(n % 3) as usize], n)
            .with_schema_version([1, 2, 3, 4][(n % 4) as usize]);
        append(&store, &stream(&format!("order-{}", n % 4)), ExpectedVersion::Any, vec![event])
            .await;
        append(&other, &stream("order-0"), ExpectedVersion::Any, batch(n..n + 1)).await;
    }
    let all = read_all(&store).await;
    let between = Position::new(all[11].position.value() + 1);
    let types = |names: &[&str]| names.iter().map(|name| event_type(name)).collect::<Vec<_>>();
    for options in [
        ReadAllOptions::from_beginning(),
        ReadAllOptions::after(all[11].position),
        ReadAllOptions::after(between),
        ReadAllOptions::from_beginning().event_types(types(&["test.b"])),
        ReadAllOptions::after(all[4].position)
            .event_types(types(&["test.a", "test.c"]))
            .page_size(2),
        ReadAllOptions::from_beginning().limit(7).page_size(3),
        ReadAllOptions::from_beginning().event_types(types(&["test.none"])),
        ReadAllOptions::after(all[29].position),
    ] {
        let read: Vec<LogEvent> = collect(store.read_all(options.clone()))
            .await
            .into_iter()
            .map(LogEvent::from)
            .collect();
        let replayed = replay_all(&store, options.clone()).await;
        assert_eq!(replayed.len(), read.len(), "{options:?}");
        for (replayed, read) in replayed.iter().zip(&read) {
            assert_eq!(
                (replayed.position, &replayed.event_type, replayed.schema_version),
                (read.position, &read.event_type, read.schema_version),
                "{options:?}"
            );
            assert_eq!(
                replayed.payload.to_value().expect("JSON"),
                read.payload.to_value().expect("JSON"),
                "{options:?}"
            );
        }
    }
    // Every event of the tenant, none of the other's, in position order.
    let every = replay_all(&store, ReadAllOptions::default()).await;
    assert_eq!(every.len(), 30);
    let pages: Vec<Vec<LogEvent>> = futures_util::TryStreamExt::try_collect(
        store.replay_all(ReadAllOptions::from_beginning().page_size(4)),
    )
    .await
    .expect("replay_all");
    assert!(pages.iter().all(|page| !page.is_empty() && page.len() <= 4), "pages of at most 4");
    assert_eq!(pages.concat(), every);
    assert!(every.windows(2).all(|pair| pair[0].position < pair[1].position));
}

/// Every event `replay_all` returns for `options`; its pages are never empty.
async fn replay_all<S: EventStore>(store: &S, options: ReadAllOptions) -> Vec<LogEvent> {
    let pages: Vec<Vec<LogEvent>> =
        futures_util::TryStreamExt::try_collect(store.replay_all(options))
            .await
            .unwrap_or_else(|error| panic!("replay_all must succeed: {error}"));
    assert!(pages.iter().all(|page| !page.is_empty()), "replay_all pages are never empty");
    pages.concat()
}
