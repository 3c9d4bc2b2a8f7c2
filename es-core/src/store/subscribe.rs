//! Tailing the log: catch up from a position, then follow new events as they commit.

use std::time::Duration;

use futures_util::StreamExt;

use super::{EventStream, Position, ReadAllOptions, StoreError};
use crate::{EventStore, EventType};

/// Where a subscription starts and what it delivers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Deliver events after this position (a checkpoint; [`Position::BEGINNING`] for all).
    pub after: Position,
    /// Only these types (filtered by the store), or every event.
    pub event_types: Option<Vec<EventType>>,
    /// Events per page read: at most this many are held in memory (default 500).
    pub page_size: usize,
    /// How long one wait for new events lasts before the subscription looks again (default
    /// 5 s; an append wakes it at once).
    pub idle_wait: Duration,
}

impl SubscribeOptions {
    /// Every event after `after`.
    pub fn after(after: Position) -> Self {
        Self { after, event_types: None, page_size: 500, idle_wait: Duration::from_secs(5) }
    }

    /// Every event from the beginning of the log.
    pub fn from_beginning() -> Self {
        Self::after(Position::BEGINNING)
    }

    /// Only events of these types.
    #[must_use]
    pub fn event_types(mut self, types: impl IntoIterator<Item = EventType>) -> Self {
        self.event_types = Some(types.into_iter().collect());
        self
    }

    /// Sets the page size (at least 1).
    #[must_use]
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Sets the idle wait.
    #[must_use]
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }
}

struct Tail<S> {
    store: S,
    options: SubscribeOptions,
    /// Every event up to here was delivered or filtered out.
    after: Position,
    reading: Option<(EventStream, Position)>,
    failed: bool,
}

/// The tenant's log from `options.after` on, then live, without end: catch-up reads in pages
/// (memory stays bounded), then a wait for the next commit (no polling loop in your code), then
/// the next read. Positions only increase and no event is delivered twice or skipped: reads
/// honour the store's read horizon, so an event that commits late is delivered in its place, not
/// jumped over. A store error is delivered as an item and ends the subscription; subscribe again
/// from the last position you handled. Used through
/// [`EventStore::subscribe`](crate::EventStore::subscribe).
pub fn subscribe<S: EventStore>(store: S, options: SubscribeOptions) -> EventStream {
    let after = options.after;
    let tail = Tail { store, options, after, reading: None, failed: false };
    Box::pin(futures_util::stream::unfold(tail, |mut tail| async move {
        if tail.failed {
            return None;
        }
        loop {
            if tail.reading.is_none() {
                // What a completed read covers: every event up to the head as it is now.
                let head = match tail.store.head_position().await {
                    Ok(head) => head,
                    Err(error) => return Some(tail.fail(error)),
                };
                let mut read = ReadAllOptions::after(tail.after).page_size(tail.options.page_size);
                if let Some(types) = &tail.options.event_types {
                    read = read.event_types(types.iter().cloned());
                }
                tail.reading = Some((tail.store.read_all(read), head));
            }
            let Some((reading, head)) = tail.reading.as_mut() else { continue };
            match reading.next().await {
                Some(Ok(event)) => {
                    tail.after = event.position;
                    return Some((Ok(event), tail));
                }
                Some(Err(error)) => return Some(tail.fail(error)),
                None => {
                    // Caught up: with a filter, events of other types up to the head need not
                    // be read again.
                    tail.after = tail.after.max(*head);
                    tail.reading = None;
                    if let Err(error) =
                        tail.store.wait_for_events(tail.after, tail.options.idle_wait).await
                    {
                        return Some(tail.fail(error));
                    }
                }
            }
        }
    }))
}

impl<S> Tail<S> {
    fn fail(mut self, error: StoreError) -> (Result<crate::RecordedEvent, StoreError>, Self) {
        self.failed = true;
        (Err(error), self)
    }
}
