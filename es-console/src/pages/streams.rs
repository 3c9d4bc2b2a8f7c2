//! The streams: search by id prefix or category, a page at a time.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Html;
use es_core::{StreamId, StreamQuery};
use maud::html;
use serde::Deserialize;

use super::{limit, query, segment};
use crate::auth::Access;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, count, time};
use crate::{ConsoleStore, Shared};

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    prefix: Option<String>,
    category: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// The streams page.
pub(crate) async fn list<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Query(params): Query<Params>,
) -> Result<Html<String>, ConsoleError> {
    let prefix = params.prefix.as_deref().unwrap_or_default().trim();
    let category = params.category.as_deref().unwrap_or_default().trim();
    let mut search = match (prefix.is_empty(), category.is_empty()) {
        (true, true) => StreamQuery::all(),
        (false, true) => StreamQuery::prefix(prefix)
            .map_err(|error| ConsoleError::BadRequest(format!("prefix: {error}")))?,
        (true, false) => StreamQuery::category(category)
            .map_err(|error| ConsoleError::BadRequest(format!("category: {error}")))?,
        (false, false) => {
            return Err(ConsoleError::BadRequest(
                "search by a prefix or a category, not both".into(),
            ));
        }
    };
    let size = limit(params.limit.as_deref(), 50, es_core::store::MAX_STREAMS_PER_PAGE as u64)?;
    search = search.limit(usize::try_from(size).unwrap_or(usize::MAX));
    if let Some(after) = params.after.as_deref().filter(|after| !after.is_empty()) {
        let after = StreamId::new(after)
            .map_err(|error| ConsoleError::BadRequest(format!("after: {error}")))?;
        search = search.after(after);
    }
    let streams = state.store.list_streams(&search).await?;
    let size_text = size.to_string();
    let next = streams.last().filter(|_| streams.len() as u64 == size).map(|last| {
        access.link(&format!(
            "/streams{}",
            query(&[
                ("prefix", prefix),
                ("category", category),
                ("after", last.stream_id.as_str()),
                ("limit", &size_text)
            ])
        ))
    });
    let body = html! {
        form method="get" action=(access.link("/streams")) class="search" {
            label { "Id prefix " input name="prefix" value=(prefix) placeholder="account-4"; }
            label { "or category " input name="category" value=(category) placeholder="account"; }
            label { "per page " input name="limit" type="number" min="1" max="1000" value=(size); }
            button type="submit" { "Search" }
        }
        @if streams.is_empty() {
            p class="empty" { "No streams match." }
        } @else {
            table id="streams" {
                thead { tr { th { "Stream" } th class="num" { "Version" } th class="num" { "Last position" } th { "Last event" } } }
                tbody {
                    @for stream in &streams {
                        tr {
                            td { a href=(access.link(&format!("/streams/{}", segment(stream.stream_id.as_str())))) { (stream.stream_id) } }
                            td class="num" { (count(stream.version)) }
                            td class="num" { (count(stream.last_position.value())) }
                            td { (time(&stream.last_recorded_at)) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next { p class="pager" { a href=(next) rel="next" { "Next page →" } } }
    };
    Ok(render::page(&state.config.title, "Streams", &access, Section::Streams, &body))
}
