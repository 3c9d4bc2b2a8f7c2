//! Transactional batches ([`TransactionalStore`]): the checkpoint moves only with a committed
//! batch, by compare-and-set, held against other runners while a batch is open, per tenant.

use std::time::Duration;

use super::fixtures::scoped;
use crate::projection::{CheckpointError, CheckpointStore, TransactionalStore};
use crate::{MultiTenantStore, Position, ProjectionName};

fn name(text: &str) -> ProjectionName {
    ProjectionName::new(text).expect("a valid projection name")
}

/// A committed batch moves the checkpoint; a dropped one moves nothing; a commit from a position
/// that is no longer stored is a conflict and changes nothing; tenants do not share checkpoints.
pub async fn transactional_batches_move_the_checkpoint_only_when_committed<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: TransactionalStore,
{
    let (a, b) = (scoped(&backend, "a"), scoped(&backend, "b"));
    let p = name("balances");
    let (tx, stored) = a.begin_batch(&p).await.expect("begin");
    assert_eq!(stored, None, "no checkpoint before the first batch");
    a.commit_batch(tx, &p, None, Position::new(5)).await.expect("first commit");
    assert_eq!(a.load_checkpoint(&p).await.expect("load"), Some(Position::new(5)));

    let (tx, stored) = a.begin_batch(&p).await.expect("begin");
    assert_eq!(stored, Some(Position::new(5)));
    drop(tx);
    assert_eq!(
        a.load_checkpoint(&p).await.expect("load"),
        Some(Position::new(5)),
        "a dropped batch rolls back and moves nothing"
    );

    let (tx, _) = a.begin_batch(&p).await.expect("begin");
    let stale = a.commit_batch(tx, &p, Some(Position::new(3)), Position::new(9)).await;
    assert!(matches!(stale, Err(CheckpointError::Conflict(_))), "{stale:?}");
    assert_eq!(a.load_checkpoint(&p).await.expect("load"), Some(Position::new(5)));

    let (tx, stored) = b.begin_batch(&p).await.expect("begin in b");
    assert_eq!(stored, None, "b must not see a's checkpoint");
    b.commit_batch(tx, &p, None, Position::new(2)).await.expect("b's first commit is its own");
    assert_eq!(a.load_checkpoint(&p).await.expect("load"), Some(Position::new(5)));
    assert_eq!(b.load_checkpoint(&p).await.expect("load"), Some(Position::new(2)));

    // Two first batches race: the second commit from "no checkpoint" loses.
    let q = name("totals");
    let (first, _) = a.begin_batch(&q).await.expect("begin");
    let (second, _) = a.begin_batch(&q).await.expect("begin");
    a.commit_batch(first, &q, None, Position::new(1)).await.expect("the first commit wins");
    let lost = a.commit_batch(second, &q, None, Position::new(2)).await;
    assert!(matches!(lost, Err(CheckpointError::Conflict(_))), "{lost:?}");
    assert_eq!(a.load_checkpoint(&q).await.expect("load"), Some(Position::new(1)));
}

/// While a batch is open, a second runner's batch of the same projection waits for it, and then
/// starts from the checkpoint it committed: two runners never handle the same events.
pub async fn an_open_batch_holds_off_a_second_runner<B>(backend: B)
where
    B: MultiTenantStore,
    B::Store: TransactionalStore,
    <B::Store as TransactionalStore>::Transaction: 'static,
{
    let a = scoped(&backend, "a");
    let p = name("balances");
    let (tx, _) = a.begin_batch(&p).await.expect("begin");
    a.commit_batch(tx, &p, None, Position::new(5)).await.expect("first commit");

    let (open, stored) = a.begin_batch(&p).await.expect("begin");
    assert_eq!(stored, Some(Position::new(5)));
    let second = {
        let (a, p) = (a.clone(), p.clone());
        tokio::spawn(async move {
            let (tx, stored) = a.begin_batch(&p).await.expect("the second begin");
            drop(tx);
            stored
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "the second runner must wait while the batch is open");
    a.commit_batch(open, &p, Some(Position::new(5)), Position::new(8)).await.expect("commit");
    let seen = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second runner goes on once the batch ends")
        .expect("task");
    assert_eq!(seen, Some(Position::new(8)), "it starts from the committed checkpoint");
}
