//! The global log: its latest events, then new ones as they commit (live, with the script).

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Html;
use es_core::{Position, ReadAllOptions, RecordedEvent};
use futures_util::TryStreamExt;
use maud::html;
use serde::Deserialize;

use super::{limit, number, query, segment};
use crate::auth::Access;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, count, time};
use crate::{ConsoleStore, Shared};

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    after: Option<String>,
    limit: Option<String>,
}

/// The log page: `limit` events after `after` (by default, the latest `limit`).
pub(crate) async fn page<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Query(params): Query<Params>,
) -> Result<Html<String>, ConsoleError> {
    let size = limit(params.limit.as_deref(), 50, 1_000)?;
    let head = state.store.head_position().await?.value();
    let after = number("after", params.after.as_deref())?.unwrap_or(head.saturating_sub(size));
    let events: Vec<RecordedEvent> = state
        .store
        .read_all(ReadAllOptions::after(Position::new(after)).limit(size).page_size(1_000))
        .try_collect()
        .await?;
    let last = events.last().map_or(after, |event| event.position.value());
    let size_text = size.to_string();
    let older = (after > 0).then(|| {
        let before = after.saturating_sub(size).to_string();
        access.link(&format!("/log{}", query(&[("after", &before), ("limit", &size_text)])))
    });
    let body = html! {
        p class="facts" {
            "Head position " strong id="head" { (count(head)) }
            span id="live-state" class="live" data-after=(last) data-source=(access.link("/log/live")) { "" }
        }
        @if let Some(older) = older { p class="pager" { a href=(older) rel="prev" { "← Earlier" } } }
        table id="log" class="events" {
            thead { tr { th class="num" { "Position" } th { "Stream" } th class="num" { "Version" } th { "Type" } th { "Recorded" } } }
            tbody id="log-rows" {
                @for event in &events {
                    tr {
                        td class="num" { (event.position.value()) }
                        td { a href=(access.link(&format!("/streams/{}{}", segment(event.stream_id.as_str()), query(&[("from", &event.stream_version.to_string())])))) { (event.stream_id) } }
                        td class="num" { (event.stream_version) }
                        td { code { (event.event_type) } }
                        td { (time(&event.recorded_at)) }
                    }
                }
            }
        }
        @if events.is_empty() { p class="empty" id="log-empty" { "No events yet." } }
    };
    Ok(render::page(&state.config.title, "Log", &access, Section::Log, &body))
}
