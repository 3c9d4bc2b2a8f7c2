//! Reads as streams that copy one page at a time under the shared lock.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use es_core::{
    Direction, Position, ReadAllOptions, ReadStreamOptions, RecordedEvent, StoreError, StreamId,
};
use futures_core::Stream;

use crate::tenant_log::{TenantLog, TenantState};

const STREAM_PAGE: usize = 512;

/// Which events a reader walks, and where it is.
enum Cursor {
    /// The tenant's log, by index into `events` (indexes are stable: the log only grows).
    All { next_index: Option<usize>, after: Position, options: ReadAllOptions },
    /// One stream, by version.
    Stream { stream_id: StreamId, direction: Direction, next_version: u64 },
}

/// A read in progress: refills its page from the log when it runs dry, ends when a refill finds
/// nothing or the limit is reached.
pub(crate) struct PageReader {
    log: Arc<TenantLog>,
    cursor: Cursor,
    page: VecDeque<RecordedEvent>,
    remaining: u64,
    done: bool,
}

impl PageReader {
    pub(crate) fn all(log: Arc<TenantLog>, options: ReadAllOptions) -> Self {
        let remaining = options.limit.unwrap_or(u64::MAX);
        let after = options.after;
        Self::new(log, Cursor::All { next_index: None, after, options }, remaining)
    }

    pub(crate) fn stream(
        log: Arc<TenantLog>,
        stream_id: StreamId,
        options: ReadStreamOptions,
    ) -> Self {
        let remaining = options.limit.unwrap_or(u64::MAX);
        let next_version = match (options.direction, options.from_version) {
            (Direction::Forward, from) => from.unwrap_or(1).max(1),
            (Direction::Backward, from) => from.unwrap_or(u64::MAX),
        };
        Self::new(
            log,
            Cursor::Stream { stream_id, direction: options.direction, next_version },
            remaining,
        )
    }

    fn new(log: Arc<TenantLog>, cursor: Cursor, remaining: u64) -> Self {
        Self { log, cursor, page: VecDeque::new(), remaining, done: remaining == 0 }
    }

    fn refill(&mut self) {
        let state = self.log.state.read();
        let room = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        match &mut self.cursor {
            Cursor::All { next_index, after, options } => {
                let start = *next_index.get_or_insert_with(|| first_index_after(&state, *after));
                // A page of at least one event, so every refill makes progress.
                let want = options.page_size.max(1).min(room);
                let mut index = start;
                // Scan at most a few pages' worth per refill so a selective filter cannot hold the
                // lock over the whole log.
                let scan_end =
                    state.events.len().min(start.saturating_add(want.saturating_mul(8).max(4_096)));
                while index < scan_end && self.page.len() < want {
                    let event = &state.events[index];
                    if options.wants(&event.event_type) {
                        self.page.push_back(event.clone());
                    }
                    index += 1;
                }
                *next_index = Some(index);
                if index >= state.events.len() && self.page.is_empty() {
                    self.done = true;
                }
            }
            Cursor::Stream { stream_id, direction, next_version } => {
                let indexes = state.streams.get(stream_id).map_or(&[][..], Vec::as_slice);
                let want = STREAM_PAGE.min(room);
                // Version v sits at `indexes[v - 1]`; clamp the cursor to the stream's length.
                let at = |version: u64| {
                    usize::try_from(version).unwrap_or(usize::MAX).min(indexes.len())
                };
                let slice = match direction {
                    Direction::Forward => {
                        let start = at(next_version.saturating_sub(1));
                        let end = start.saturating_add(want).min(indexes.len());
                        *next_version = end as u64 + 1;
                        &indexes[start..end]
                    }
                    Direction::Backward => {
                        let end = at(*next_version);
                        let start = end.saturating_sub(want);
                        *next_version = start as u64;
                        &indexes[start..end]
                    }
                };
                match direction {
                    Direction::Forward => {
                        self.page.extend(slice.iter().map(|&i| state.events[i].clone()));
                    }
                    Direction::Backward => {
                        self.page.extend(slice.iter().rev().map(|&i| state.events[i].clone()));
                    }
                }
                if self.page.is_empty() {
                    self.done = true;
                }
            }
        }
    }
}

/// The index of the first event with a position after `after` (positions are sorted).
fn first_index_after(state: &TenantState, after: Position) -> usize {
    state.events.partition_point(|event| event.position <= after)
}

impl Stream for PageReader {
    type Item = Result<RecordedEvent, StoreError>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        while this.page.is_empty() && !this.done {
            this.refill();
        }
        match this.page.pop_front() {
            Some(event) if this.remaining > 0 => {
                this.remaining -= 1;
                if this.remaining == 0 {
                    this.done = true;
                    this.page.clear();
                }
                Poll::Ready(Some(Ok(event)))
            }
            _ => Poll::Ready(None),
        }
    }
}
