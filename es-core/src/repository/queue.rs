//! Commands for one stream take turns within a process: a hot aggregate's commands queue behind
//! each other instead of racing to a version conflict, a reload and a retry (which, with many
//! concurrent commands, ended in `Contention`). Other processes still race, and the version check
//! and retries handle them as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

use crate::StreamId;

/// The streams with a command running or waiting in this process (shared by a repository's
/// clones). An entry lives while someone holds or waits for its turn.
#[derive(Default)]
pub(crate) struct StreamQueue {
    streams: Mutex<HashMap<StreamId, Arc<tokio::sync::Mutex<()>>>>,
}

/// A command's turn on its stream; the next one's begins when it is dropped.
pub(crate) struct Turn {
    guard: Option<OwnedMutexGuard<()>>,
    queue: Arc<StreamQueue>,
    stream: StreamId,
}

impl StreamQueue {
    /// Waits for the turn on `stream` (first come, first served: tokio's mutex is fair).
    pub(crate) async fn turn(self: &Arc<Self>, stream: &StreamId) -> Turn {
        let mutex = {
            let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(streams.entry(stream.clone()).or_default())
        };
        let guard = mutex.lock_owned().await;
        Turn { guard: Some(guard), queue: Arc::clone(self), stream: stream.clone() }
    }

    /// Whether a command holds or waits for the turn on `stream`.
    pub(crate) fn is_busy(&self, stream: &StreamId) -> bool {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner).contains_key(stream)
    }

    /// How many streams have an entry (tests: entries do not outlive their commands).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Under the map's lock, so nobody can take the entry between the check and the removal.
        let mut streams = self.queue.streams.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.guard.take());
        if streams.get(&self.stream).is_some_and(|mutex| Arc::strong_count(mutex) == 1) {
            streams.remove(&self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn turns_are_taken_one_at_a_time_and_leave_nothing_behind() {
        let queue = Arc::new(StreamQueue::default());
        let stream = StreamId::new("hot").unwrap();
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (queue, stream, inside) = (Arc::clone(&queue), stream.clone(), Arc::clone(&inside));
            tasks.spawn(async move {
                let _turn = queue.turn(&stream).await;
                let before = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                before
            });
        }
        while let Some(before) = tasks.join_next().await {
            assert_eq!(before.unwrap(), 0, "nobody else was inside");
        }
        assert_eq!(queue.len(), 0, "no entry outlives its commands");
        // A turn handed to a waiting command keeps the stream's entry: one arriving then still
        // waits for it (it does not find the stream idle and run beside it).
        let first = queue.turn(&stream).await;
        let waiting = tokio::spawn({
            let (queue, stream) = (Arc::clone(&queue), stream.clone());
            async move {
                let _second = queue.turn(&stream).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let holders = || {
            let streams = queue.streams.lock().unwrap_or_else(PoisonError::into_inner);
            streams.get(&stream).map_or(0, Arc::strong_count)
        };
        while holders() < 3 {
            tokio::task::yield_now().await; // the map, the first turn, the second one waiting
        }
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await; // the second one holds the turn
        let third = tokio::time::timeout(Duration::from_millis(50), queue.turn(&stream)).await;
        assert!(third.is_err(), "the third one waits while the second holds the turn");
        assert!(waiting.await.is_ok(), "the second command's task ends cleanly");
        assert_eq!(queue.len(), 0);
        // Another stream does not wait for this one.
        let _hot = queue.turn(&stream).await;
        let cold = StreamId::new("cold").unwrap();
        let other = tokio::time::timeout(Duration::from_secs(5), queue.turn(&cold));
        assert!(other.await.is_ok());
    }
}
