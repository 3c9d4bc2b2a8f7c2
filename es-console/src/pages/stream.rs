//! One stream: its events, a page at a time, forwards or backwards.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use es_core::{ReadStreamOptions, RecordedEvent, StreamId};
use futures_util::TryStreamExt;
use maud::{Markup, html};
use serde::Deserialize;

use super::{limit, number, query, segment};
use crate::auth::Access;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, count, json, time};
use crate::{ConsoleStore, Shared};

/// The most events one stream page shows.
pub(crate) const MAX_EVENTS_PER_PAGE: u64 = 1_000;

/// The most payload bytes one stream page shows: past it, the page ends early and links to the
/// rest (a page of a thousand large events would otherwise weigh a gigabyte).
pub(crate) const MAX_PAGE_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    from: Option<String>,
    dir: Option<String>,
    limit: Option<String>,
}

/// A stream's page.
pub(crate) async fn page<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Html<String>, ConsoleError> {
    let stream_id = StreamId::new(&id)
        .map_err(|error| ConsoleError::BadRequest(format!("stream id: {error}")))?;
    let size = limit(params.limit.as_deref(), 100, MAX_EVENTS_PER_PAGE)?;
    let backward = match params.dir.as_deref().unwrap_or("forward") {
        "forward" | "" => false,
        "backward" => true,
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "dir must be forward or backward, not {other:?}"
            )));
        }
    };
    let from = number("from", params.from.as_deref())?;
    let version = state.store.stream_version(&stream_id).await?;
    if version == 0 {
        return Err(ConsoleError::NotFound(format!("stream {stream_id} has no events")));
    }
    let mut options =
        if backward { ReadStreamOptions::backward() } else { ReadStreamOptions::forward() };
    if let Some(from) = from {
        options = options.from_version(from);
    }
    options = options.limit(size);
    let events: Vec<RecordedEvent> =
        state.store.read_stream(&stream_id, options).try_collect().await?;
    let (rows, cut) = rows_within_budget(&events);
    let link = |from: u64, dir: &str| {
        let (from, size) = (from.to_string(), size.to_string());
        access.link(&format!(
            "/streams/{}{}",
            segment(stream_id.as_str()),
            query(&[("from", &from), ("dir", dir), ("limit", &size)])
        ))
    };
    let (lowest, highest) = events.iter().fold((u64::MAX, 0), |(low, high), event| {
        (low.min(event.stream_version), high.max(event.stream_version))
    });
    let earlier = (!events.is_empty() && lowest > 1).then(|| link(lowest - 1, "backward"));
    let later = (!events.is_empty() && highest < version).then(|| link(highest + 1, "forward"));
    // A page cut short by its size goes on from the first event it did not show.
    let (earlier, later) = match cut {
        Some(next) if backward => (Some(link(next, "backward")), later),
        Some(next) => (earlier, Some(link(next, "forward"))),
        None => (earlier, later),
    };
    let body = html! {
        p class="facts" {
            "Version " strong { (count(version)) }
            " · " a href=(link(1, "forward")) { "first events" }
            " · " a href=(link(version, "backward")) { "latest events" }
        }
        (pager(earlier.as_deref(), later.as_deref()))
        @if cut.is_some() {
            p class="notice" { "This page stops at " (rows.len()) " events: their payloads reach the page's limit of 4 MiB." }
        }
        @if events.is_empty() {
            p class="empty" { "No events in this range." }
        } @else {
            table id="events" class="events" {
                thead { tr { th class="num" { "Version" } th class="num" { "Position" } th { "Type" } th { "Recorded" } th { "Payload and metadata" } } }
                tbody { @for (event, payload) in &rows { (row(event, payload)) } }
            }
        }
        (pager(earlier.as_deref(), later.as_deref()))
    };
    Ok(render::page(
        &state.config.title,
        &format!("Stream {stream_id}"),
        &access,
        Section::Streams,
        &body,
    ))
}

fn pager(earlier: Option<&str>, later: Option<&str>) -> Markup {
    html! {
        p class="pager" {
            @if let Some(earlier) = earlier { a href=(earlier) rel="prev" { "← Earlier" } }
            @if let Some(later) = later { a href=(later) rel="next" { "Later →" } }
        }
    }
}

/// The events a page shows with their payloads as shown, within [`MAX_PAGE_PAYLOAD_BYTES`] (at
/// least one); and, if the page was cut, the version of the first event left out.
fn rows_within_budget(events: &[RecordedEvent]) -> (Vec<(&RecordedEvent, String)>, Option<u64>) {
    let mut rows = Vec::with_capacity(events.len());
    let mut bytes = 0;
    for event in events {
        let shown = crate::render::payload(&event.payload);
        bytes += shown.len();
        if bytes > MAX_PAGE_PAYLOAD_BYTES && !rows.is_empty() {
            return (rows, Some(event.stream_version));
        }
        rows.push((event, shown));
    }
    (rows, None)
}

fn row(event: &RecordedEvent, payload: &str) -> Markup {
    let metadata = serde_json::to_value(&*event.metadata).map(|v| json(&v)).unwrap_or_default();
    html! {
        tr id={ "v" (event.stream_version) } {
            td class="num" { (event.stream_version) }
            td class="num" { (count(event.position.value())) }
            td { code { (event.event_type) } @if event.schema_version > 1 { " v" (event.schema_version) } }
            td { (time(&event.recorded_at)) }
            td {
                pre class="payload" { (payload) }
                details { summary { "metadata · " (event.event_id) } pre { (metadata) } }
            }
        }
    }
}
