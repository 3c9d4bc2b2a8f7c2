//! The capabilities beside the event store (snapshots, checkpoints, dead letters, projection
//! locks): their semantics and, above all, their tenancy, each case with two tenants so a backend
//! that dropped the tenant from one of its queries fails here rather than in production.

use chrono::SubsecRound;

use super::fixtures::{batch, event_type, scoped, stream};
use crate::projection::{
    CheckpointError, CheckpointStore, DeadLetterStore, ParkedEvent, ProjectionLock, ProjectionLocks,
};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::{EventId, MultiTenantStore, Payload, Position, StreamCatalog};

/// The bounds a backend's tenant handle meets to run the capability cases.
pub trait Capabilities:
    SnapshotStore + CheckpointStore + DeadLetterStore + ProjectionLocks + StreamCatalog
{
}

impl<S> Capabilities for S where
    S: SnapshotStore + CheckpointStore + DeadLetterStore + ProjectionLocks + StreamCatalog
{
}

fn snapshot(version: u64, balance: i64) -> Snapshot {
    let state = Payload::from_value(&serde_json::json!({ "balance": balance })).expect("valid");
    Snapshot::new("account", stream("account-1"), version, EventId::new(), 1, state)
}

/// A projection name of the tests.
fn name(text: &str) -> crate::ProjectionName {
    crate::ProjectionName::new(text).expect("a valid projection name")
}

fn parked(projection: &str, position: u64, error: &str) -> ParkedEvent {
    ParkedEvent {
        projection: name(projection),
        position: Position::new(position),
        event_type: event_type("test.numbered"),
        error: error.to_owned(),
        attempts: 3,
        parked_at: crate::event::recorded_now().trunc_subsecs(6),
    }
}

/// A snapshot is its tenant's: another tenant's stream of the same id sees none, writes its own,
/// and neither replaces the other; a snapshot never goes back to an older version.
pub async fn snapshots_are_scoped_to_tenant_and_never_go_back<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: Capabilities,
{
    let (a, b) = (scoped(&backend, "a"), scoped(&backend, "b"));
    let s = stream("account-1");
    let saved = snapshot(10, 100);
    a.save_snapshot(saved.clone()).await.expect("save in a");
    assert_eq!(b.load_snapshot(&s).await.expect("load in b"), None, "b must not see a's snapshot");
    b.save_snapshot(snapshot(5, 7)).await.expect("save in b");
    let in_a = a.load_snapshot(&s).await.expect("load").expect("a keeps its snapshot");
    assert_eq!(in_a, saved, "a snapshot reads back field for field (event id, checksum, state)");
    assert_eq!(
        (in_a.version, in_a.state.to_value().expect("json")["balance"].as_i64()),
        (10, Some(100))
    );
    let in_b = b.load_snapshot(&s).await.expect("load").expect("b has its own");
    assert_eq!(in_b.version, 5);
    a.save_snapshot(snapshot(8, 1)).await.expect("an older save is accepted and ignored");
    let in_a = a.load_snapshot(&s).await.expect("load").expect("still there");
    assert_eq!(in_a.version, 10, "a snapshot never goes back");
    let newer = snapshot(12, 120);
    a.save_snapshot(newer.clone()).await.expect("a newer save");
    assert_eq!(a.load_snapshot(&s).await.expect("load"), Some(newer), "a newer snapshot replaces");
    assert!(in_a.is_intact(), "a stored snapshot reads back with its checksum intact");
}

/// A checkpoint is its tenant's, and a compare-and-set: a save that expected another position
/// changes nothing.
pub async fn checkpoints_are_scoped_to_tenant_and_compare_and_set<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: Capabilities,
{
    let (a, b) = (scoped(&backend, "a"), scoped(&backend, "b"));
    a.save_checkpoint(&name("p"), None, Position::new(10)).await.expect("first save in a");
    assert_eq!(
        b.load_checkpoint(&name("p")).await.expect("load"),
        None,
        "b must not see a's checkpoint"
    );
    b.save_checkpoint(&name("p"), None, Position::new(3)).await.expect("b's first save is its own");
    let stale = a.save_checkpoint(&name("p"), Some(Position::new(3)), Position::new(20)).await;
    assert!(
        matches!(stale, Err(CheckpointError::Conflict(_))),
        "a stale save must conflict: {stale:?}"
    );
    let again = a.save_checkpoint(&name("p"), None, Position::new(20)).await;
    assert!(
        matches!(again, Err(CheckpointError::Conflict(_))),
        "a second first save must conflict: {again:?}"
    );
    a.save_checkpoint(&name("p"), Some(Position::new(10)), Position::new(20))
        .await
        .expect("a moves on");
    assert_eq!(a.load_checkpoint(&name("p")).await.expect("load"), Some(Position::new(20)));
    assert_eq!(b.load_checkpoint(&name("p")).await.expect("load"), Some(Position::new(3)));
    assert_eq!(b.reset_checkpoint(&name("p")).await.expect("reset b"), Some(Position::new(3)));
    assert_eq!(
        a.load_checkpoint(&name("p")).await.expect("load"),
        Some(Position::new(20)),
        "a reset in b leaves a"
    );
}

/// Parked events are their tenant's: listing, replacing and unparking in one tenant leave the
/// other's untouched.
pub async fn dead_letters_are_scoped_to_tenant<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: Capabilities,
{
    let (a, b) = (scoped(&backend, "a"), scoped(&backend, "b"));
    a.park(parked("p", 7, "a's failure")).await.expect("park in a");
    assert!(
        b.parked(&name("p")).await.expect("list b").is_empty(),
        "b must not see a's parked events"
    );
    b.park(parked("p", 7, "b's failure")).await.expect("park in b");
    let in_a = a.parked(&name("p")).await.expect("list a");
    assert_eq!(in_a.len(), 1);
    assert_eq!(in_a[0].error, "a's failure", "b's park must not replace a's");
    b.unpark(&name("p"), Position::new(7)).await.expect("unpark in b");
    assert_eq!(a.parked(&name("p")).await.expect("list a").len(), 1, "b's unpark must leave a's");
    assert!(b.parked(&name("p")).await.expect("list b").is_empty());
    // Parking the same position again replaces the record (the latest error).
    a.park(parked("p", 7, "again")).await.expect("park again");
    let in_a = a.parked(&name("p")).await.expect("list a");
    assert_eq!((in_a.len(), in_a[0].error.as_str()), (1, "again"));
}

/// One holder per projection and tenant: a second try fails while the first holds it, another
/// tenant's projection of the same name is independent, and a dropped lock can be taken again.
pub async fn projection_locks_are_scoped_to_tenant<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: Capabilities,
{
    let (a, b) = (scoped(&backend, "a"), scoped(&backend, "b"));
    let mut held = a.try_lock(&name("p")).await.expect("lock").expect("a takes p");
    assert!(held.is_held().await);
    assert!(a.try_lock(&name("p")).await.expect("lock").is_none(), "p is held in a");
    let in_b = b.try_lock(&name("p")).await.expect("lock");
    assert!(in_b.is_some(), "b's p is another projection than a's");
    assert!(a.try_lock(&name("q")).await.expect("lock").is_some(), "another projection is free");
    drop(held);
    let mut again = None;
    for _ in 0..100 {
        again = a.try_lock(&name("p")).await.expect("lock");
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(again.is_some(), "a dropped lock can be taken again");
}

/// The stream catalog lists its tenant's streams by prefix, in id order, with each stream's
/// version and last position, a page at a time without skipping or repeating one; another
/// tenant's streams of the same ids are never listed.
pub async fn stream_catalog_pages_by_prefix_within_its_tenant<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: Capabilities,
{
    use crate::{EventStore, StreamQuery};

    let (a, b) = (scoped(&backend, "a"), scoped(&backend, "b"));
    let mut last = std::collections::HashMap::new();
    for (id, events) in [("account-2", 3), ("account-10", 1), ("order-1", 2), ("account-1", 2)] {
        let result =
            super::fixtures::append(&a, &stream(id), crate::ExpectedVersion::Any, batch(0..events))
                .await;
        last.insert(id, result.last_position);
    }
    // b holds a longer stream of the same id, and one id a lacks.
    super::fixtures::append(&b, &stream("account-1"), crate::ExpectedVersion::Any, batch(0..5))
        .await;
    super::fixtures::append(&b, &stream("account-99"), crate::ExpectedVersion::Any, batch(0..1))
        .await;

    let everything = a.list_streams(&StreamQuery::all()).await.expect("list a");
    let ids: Vec<&str> = everything.iter().map(|summary| summary.stream_id.as_str()).collect();
    assert_eq!(ids, ["account-1", "account-10", "account-2", "order-1"], "a's streams, id order");
    for summary in &everything {
        let expected_version = a.stream_version(&summary.stream_id).await.expect("version");
        assert_eq!(summary.version, expected_version, "{}: version", summary.stream_id);
        assert_eq!(
            summary.last_position,
            last[summary.stream_id.as_str()],
            "{}: the position of its last event",
            summary.stream_id
        );
    }

    // A category, paged two at a time: every account once, then an empty page.
    let mut query = StreamQuery::category("account").expect("valid category").limit(2);
    let mut paged = Vec::new();
    for round in 0.. {
        assert!(round < 10, "paging must end; so far {paged:?}");
        let page = a.list_streams(&query).await.expect("page");
        assert!(page.len() <= 2, "a page holds at most its limit, got {}", page.len());
        let Some(tail) = page.last() else { break };
        query = query.clone().after(tail.stream_id.clone());
        paged.extend(page.into_iter().map(|summary| summary.stream_id.to_string()));
    }
    assert_eq!(paged, ["account-1", "account-10", "account-2"]);
    // A page exactly as large as what matches holds it all.
    let exact = a.list_streams(&StreamQuery::category("account").expect("valid").limit(3)).await;
    assert_eq!(exact.expect("list").len(), 3, "three accounts on a page of three");

    let prefixed = a.list_streams(&StreamQuery::prefix("account-1").expect("valid")).await;
    let prefixed: Vec<String> =
        prefixed.expect("list").into_iter().map(|summary| summary.stream_id.to_string()).collect();
    assert_eq!(prefixed, ["account-1", "account-10"], "a prefix, not a category");
    assert!(
        a.list_streams(&StreamQuery::prefix("nothing").expect("valid"))
            .await
            .expect("list")
            .is_empty()
    );

    let in_b = b.list_streams(&StreamQuery::all()).await.expect("list b");
    let in_b: Vec<(String, u64)> =
        in_b.into_iter().map(|summary| (summary.stream_id.to_string(), summary.version)).collect();
    assert_eq!(
        in_b,
        [("account-1".to_owned(), 5), ("account-99".to_owned(), 1)],
        "b's own streams"
    );
}
