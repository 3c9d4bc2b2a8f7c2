//! The live tail of the global log, as server-sent events: each new event as one JSON message,
//! at most a second after it commits (the store wakes the waiter on commit).

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use es_core::{Position, ReadAllOptions, RecordedEvent};
use futures_util::{Stream, TryStreamExt, stream};
use serde::Deserialize;

use crate::auth::Access;
use crate::error::ConsoleError;
use crate::pages::{number, segment};
use crate::{ConsoleStore, Shared};

/// The most events one message burst reads.
const BURST: u64 = 200;

/// How long one wait for new events lasts before it asks again.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    after: Option<String>,
}

/// `GET /log/live?after=N`: the events after `N` (default: the head), then each new one.
pub(crate) async fn events<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Query(params): Query<Params>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ConsoleError> {
    let after = match number("after", params.after.as_deref())? {
        Some(after) => after,
        None => state.store.head_position().await?.value(),
    };
    let store = state.store.clone();
    let base = access.base;
    let messages =
        stream::unfold((store, Position::new(after), base), |(store, after, base)| async move {
            loop {
                let read: Result<Vec<RecordedEvent>, _> =
                    store.read_all(ReadAllOptions::after(after).limit(BURST)).try_collect().await;
                match read {
                    Ok(events) if !events.is_empty() => {
                        let next = events.last().map_or(after, |event| event.position);
                        let messages: Vec<Result<Event, Infallible>> =
                            events.iter().map(|event| Ok(message(event, &base))).collect();
                        return Some((stream::iter(messages), (store, next, base)));
                    }
                    Ok(_) => {
                        if store.wait_for_events(after, WAIT).await.is_err() {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "es_console: the live tail's read failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    let stop = state.stop.clone();
    let until = async move {
        match stop {
            Some(stop) => stop.await,
            None => std::future::pending().await,
        }
    };
    let events =
        futures_util::StreamExt::take_until(futures_util::StreamExt::flatten(messages), until);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One event as a message: what the log page's row shows (no payload, no metadata).
fn message(event: &RecordedEvent, base: &str) -> Event {
    let data = serde_json::json!({
        "position": event.position.value(),
        "stream_id": event.stream_id.as_str(),
        "stream_version": event.stream_version,
        "event_type": event.event_type.as_str(),
        "recorded_at": crate::render::time(&event.recorded_at),
        "href": format!("{base}/streams/{}?from={}", segment(event.stream_id.as_str()), event.stream_version),
    });
    Event::default().id(event.position.value().to_string()).data(data.to_string())
}
