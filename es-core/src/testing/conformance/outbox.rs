//! The outbox ([`OutboxStore`]): messages enqueued with their append and only with it, read back
//! in order by partition, settled once, leased by one relay at a time, scoped to the tenant.

use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::fixtures::{batch, numbered, read_stream, scoped, stream};
use crate::outbox::{OutboxMessage, OutboxStore, PARTITIONS, Publication, partition_of};
use crate::{
    AppendOptions, EventStore, ExpectedVersion, IdempotencyKey, InvalidAppend, MultiTenantStore,
    StoreError, Subject,
};

fn publication(event: usize, subject: &str) -> Publication {
    Publication::new(
        event,
        Subject::new(subject).expect("valid subject"),
        format!("{{\"e\":{event}}}"),
    )
    .header("Content-Type", "application/json")
    .expect("valid header")
}

fn all_partitions() -> Vec<u16> {
    (0..PARTITIONS).collect()
}

async fn pending<S: OutboxStore>(store: &S) -> Vec<OutboxMessage> {
    store.pending(&all_partitions(), 10_000).await.expect("pending")
}

/// Publications are enqueued by the append that writes their events, on every path an append
/// takes (one event or a batch, an exact version, `Any`, a key), each with its event's identity;
/// a conflicting append, a refused one and an idempotent replay enqueue nothing.
pub async fn publications_are_enqueued_with_their_append_only<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: OutboxStore,
{
    let store = scoped(&backend, "outbox");
    let s = stream("account-1");
    let one = AppendOptions::default().publish(publication(0, "bank.opened"));
    store.append(&s, ExpectedVersion::NoStream, batch(1..2), one.clone()).await.expect("first");
    let three = AppendOptions::default()
        .publish(publication(2, "bank.third"))
        .publish(publication(0, "bank.first"));
    store.append(&s, ExpectedVersion::Exact(1), batch(2..5), three).await.expect("batch");
    store.append(&s, ExpectedVersion::Any, batch(5..6), one.clone()).await.expect("any");
    let keyed = one.clone().idempotency_key(IdempotencyKey::new("k-1").expect("key"));
    store.append(&s, ExpectedVersion::Exact(5), batch(6..7), keyed.clone()).await.expect("keyed");
    // Enqueue nothing: a replay of the keyed append, a conflict, a refused publication.
    store.append(&s, ExpectedVersion::Exact(5), batch(6..7), keyed).await.expect("replay");
    for (expected, events) in [
        (ExpectedVersion::NoStream, batch(7..8)),
        (ExpectedVersion::Exact(3), batch(7..8)),
        (ExpectedVersion::Exact(9), batch(7..8)),
        (ExpectedVersion::Exact(3), batch(7..9)),
        (ExpectedVersion::Exact(9), batch(7..9)),
    ] {
        // Behind or ahead of the stream, one event or a batch: nothing written, nothing enqueued.
        let conflict = store.append(&s, expected, events, one.clone()).await;
        assert!(
            matches!(conflict, Err(StoreError::VersionConflict { actual: 6, .. })),
            "{expected}: {conflict:?}"
        );
    }
    let refused = store
        .append(
            &s,
            ExpectedVersion::Any,
            batch(7..8),
            AppendOptions::default().publish(publication(3, "bank.x")),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::InvalidAppend {
                reason: InvalidAppend::InvalidPublication { index: 0, .. },
                ..
            })
        ),
        "a publication of an event the batch does not hold is refused: {refused:?}"
    );
    let twice = AppendOptions::default()
        .publish(publication(0, "bank.a"))
        .publish(publication(0, "bank.b"));
    let refused = store.append(&s, ExpectedVersion::Any, batch(7..8), twice).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::InvalidAppend {
                reason: InvalidAppend::InvalidPublication { index: 1, .. },
                ..
            })
        ),
        "one message per event: {refused:?}"
    );

    let events = read_stream(&store, &s).await;
    assert_eq!(events.len(), 6, "the refused appends wrote no event");
    let messages = pending(&store).await;
    let described: Vec<(u64, &str)> =
        messages.iter().map(|m| (m.stream_version, m.subject.as_str())).collect();
    assert_eq!(
        described,
        [
            (1, "bank.opened"),
            (2, "bank.first"),
            (4, "bank.third"),
            (5, "bank.opened"),
            (6, "bank.opened")
        ],
        "one message per publication written, in stream order"
    );
    for message in &messages {
        let event = &events[usize::try_from(message.stream_version - 1).expect("small")];
        assert_eq!(message.event_id, event.event_id, "the message carries its event's id");
        assert_eq!(message.event_type, event.event_type);
        assert_eq!(message.stream_id, s);
        assert_eq!(&message.tenant, store.tenant());
        assert_eq!(message.partition, partition_of(&s));
        assert_eq!(message.headers.get("Content-Type"), Some("application/json"));
        let index = if message.subject.as_str() == "bank.third" { 2 } else { 0 };
        assert_eq!(message.payload, Bytes::from(format!("{{\"e\":{index}}}")));
    }
    assert!(
        messages.windows(2).all(|pair| pair[0].sequence < pair[1].sequence),
        "sequences increase"
    );
}

/// The event's correlation and causation ids travel as headers.
pub async fn publications_carry_correlation_and_causation<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: OutboxStore,
{
    let store = scoped(&backend, "outbox-ids");
    let (correlation, causation) = (Uuid::now_v7(), Uuid::now_v7());
    let event = numbered(1).with_metadata(
        crate::EventMetadata::default()
            .with_correlation_id(correlation)
            .with_causation_id(causation),
    );
    store
        .append(
            &stream("a-1"),
            ExpectedVersion::Any,
            vec![event],
            AppendOptions::default().publish(publication(0, "x.y")),
        )
        .await
        .expect("append");
    let messages = pending(&store).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].headers.get("Es-Correlation-Id"),
        Some(correlation.to_string().as_str())
    );
    assert_eq!(messages[0].headers.get("Es-Causation-Id"), Some(causation.to_string().as_str()));
}

/// `pending` reads only the partitions asked for, in sequence order, without what was delivered
/// or parked; parked messages keep their reason; the counts follow; pruning deletes delivered
/// messages only. All of it per tenant.
pub async fn outbox_messages_settle_by_partition_and_tenant<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: OutboxStore,
{
    let (a, b) = (scoped(&backend, "outbox-a"), scoped(&backend, "outbox-b"));
    // Two streams in different partitions.
    let first = stream("account-1");
    let second = (2..100)
        .map(|n| stream(&format!("account-{n}")))
        .find(|s| partition_of(s) != partition_of(&first))
        .expect("streams spread over partitions");
    for s in [&first, &second] {
        for n in 0..3 {
            a.append(
                s,
                ExpectedVersion::Exact(n),
                batch(n..n + 1),
                AppendOptions::default().publish(publication(0, "t.m")),
            )
            .await
            .expect("append");
        }
    }
    assert!(pending(&b).await.is_empty(), "b sees none of a's messages");
    let only_first = a.pending(&[partition_of(&first)], 100).await.expect("pending");
    assert_eq!(only_first.len(), 3);
    assert!(only_first.iter().all(|m| m.stream_id == first));
    assert_eq!(a.pending(&all_partitions(), 2).await.expect("pending").len(), 2, "the limit holds");

    let stats = a.outbox_stats().await.expect("stats");
    assert_eq!((stats.pending, stats.parked, stats.delivered), (6, 0, 0));
    assert!(stats.oldest_pending.is_some());
    assert_eq!(b.outbox_stats().await.expect("stats").pending, 0, "b's outbox is empty");

    // b settling a's sequences changes nothing of a's.
    let sequences: Vec<u64> = only_first.iter().map(|m| m.sequence).collect();
    b.mark_delivered(&sequences).await.expect("b marks");
    b.park_message(sequences[1], "not b's").await.expect("b parks");
    assert_eq!(pending(&a).await.len(), 6, "another tenant cannot settle a's messages");

    a.mark_delivered(&sequences[..1]).await.expect("mark");
    a.park_message(sequences[1], "too large").await.expect("park");
    let left: Vec<u64> = a
        .pending(&[partition_of(&first)], 100)
        .await
        .expect("pending")
        .iter()
        .map(|m| m.sequence)
        .collect();
    assert_eq!(left, [sequences[2]], "delivered and parked messages are not pending");
    let parked = a.parked_messages(10).await.expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].message.sequence, parked[0].reason.as_str()),
        (sequences[1], "too large")
    );
    assert!(b.parked_messages(10).await.expect("parked").is_empty());
    let stats = a.outbox_stats().await.expect("stats");
    assert_eq!((stats.pending, stats.parked, stats.delivered), (4, 1, 1));

    // Pruning: delivered messages enqueued before the cut go (strictly before: one enqueued at
    // the cut itself stays); pending and parked stay.
    assert_eq!(
        a.prune_delivered(only_first[0].enqueued_at).await.expect("prune"),
        0,
        "a message enqueued exactly at the cut is not before it"
    );
    assert_eq!(
        b.prune_delivered(chrono::Utc::now() + chrono::TimeDelta::seconds(1)).await.expect("prune"),
        0
    );
    let pruned =
        a.prune_delivered(chrono::Utc::now() + chrono::TimeDelta::seconds(1)).await.expect("prune");
    assert_eq!(pruned, 1);
    let stats = a.outbox_stats().await.expect("stats");
    assert_eq!((stats.pending, stats.parked, stats.delivered), (4, 1, 0));
    assert_eq!(
        a.prune_delivered(chrono::Utc::now() - chrono::TimeDelta::hours(1)).await.expect("prune"),
        0,
        "nothing delivered before the cut"
    );
}

/// A partition's lease is held by one owner at a time: taken when free, lapsed or the caller's
/// own; released only by its owner; listed while live; per tenant.
pub async fn outbox_leases_are_exclusive_until_they_lapse<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: OutboxStore,
{
    let (a, b) = (scoped(&backend, "lease-a"), scoped(&backend, "lease-b"));
    let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
    let long = Duration::from_mins(1);
    assert_eq!(a.lease(one, &[0, 1], long).await.expect("lease"), [0, 1]);
    assert_eq!(a.lease(two, &[1, 2], long).await.expect("lease"), [2], "1 is one's");
    assert_eq!(a.lease(one, &[0, 1], long).await.expect("renew"), [0, 1], "renewing keeps them");
    assert_eq!(
        b.lease(two, &[0, 1], long).await.expect("lease"),
        [0, 1],
        "b's partitions are b's own"
    );
    let owners: Vec<(u16, Uuid)> =
        a.leases().await.expect("leases").iter().map(|l| (l.partition, l.owner)).collect();
    assert_eq!(owners, [(0, one), (1, one), (2, two)]);
    let mut alive = vec![one, two];
    alive.sort_unstable();
    assert_eq!(a.relays().await.expect("relays"), alive, "every relay that asked is alive");
    assert_eq!(b.relays().await.expect("relays"), [two], "relays are per tenant");
    let three = Uuid::now_v7();
    assert_eq!(a.lease(three, &[0, 1, 2], long).await.expect("lease"), Vec::<u16>::new());
    assert!(a.relays().await.expect("relays").contains(&three), "alive without a partition");
    a.release(two, &[1]).await.expect("release");
    assert_eq!(
        a.lease(two, &[1], long).await.expect("lease"),
        Vec::<u16>::new(),
        "only the owner releases"
    );
    a.release(one, &[1]).await.expect("release");
    assert_eq!(a.lease(two, &[1], long).await.expect("lease"), [1]);
    // A relay that leaves gives up its leases and its place at once.
    a.leave(three).await.expect("leave");
    assert!(!a.relays().await.expect("relays").contains(&three));
    assert_eq!(a.lease(two, &[7], long).await.expect("lease"), [7]);
    a.leave(two).await.expect("leave");
    assert!(a.leases().await.expect("leases").iter().all(|l| l.owner != two), "two's leases went");
    assert_eq!(
        b.leases().await.expect("leases").len(),
        2,
        "b's leases are b's: leaving a keeps them"
    );
    assert_eq!(a.lease(one, &[7, 2, 1], long).await.expect("lease"), [1, 2, 7], "free for others");
    // A lapsed lease is free for anyone.
    assert_eq!(a.lease(one, &[5], Duration::from_millis(50)).await.expect("lease"), [5]);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        a.leases().await.expect("leases").iter().all(|l| l.partition != 5),
        "lapsed leases are not listed"
    );
    assert_eq!(a.lease(three, &[5], long).await.expect("lease"), [5], "taken over once lapsed");
}

/// A relay waiting for messages waits out its timeout when nothing comes, and wakes soon after
/// an enqueue (well before the timeout).
pub async fn waiting_for_messages_wakes_on_an_enqueue<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: OutboxStore,
{
    let store = scoped(&backend, "outbox-wait");
    // A backend may change the generation once while it starts listening (it cannot know what
    // it missed): let that settle first.
    store.wait_for_messages(store.message_generation(), Duration::from_millis(200)).await;
    let seen = store.message_generation();
    let started = std::time::Instant::now();
    store.wait_for_messages(seen, Duration::from_millis(100)).await;
    assert!(started.elapsed() >= Duration::from_millis(90), "nothing came: the timeout passed");
    let writer = store.clone();
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer
            .append(
                &stream("w-1"),
                ExpectedVersion::Any,
                batch(0..1),
                AppendOptions::default().publish(publication(0, "w.x")),
            )
            .await
            .expect("append");
    });
    let started = std::time::Instant::now();
    store.wait_for_messages(seen, Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(5), "woken by the enqueue, not the timeout");
    assert_ne!(store.message_generation(), seen);
    append.await.expect("the append task");
}
