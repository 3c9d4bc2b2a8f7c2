//! One parked event: the record, the event itself, and a replay of just it.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Html;
use es_core::{Position, ReadAllOptions, RecordedEvent};
use futures_util::TryStreamExt;
use maud::html;

use super::{number, segment};
use crate::auth::Access;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, csrf_field, time};
use crate::{ConsoleStore, Shared};

/// The parked event's page.
pub(crate) async fn inspect<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Path((name, position)): Path<(String, String)>,
) -> Result<Html<String>, ConsoleError> {
    let control = state.control(&name)?;
    let position = number("position", Some(&position))?.unwrap_or_default();
    let parked = state.store.parked(control.name()).await?;
    let Some(parked) = parked.into_iter().find(|parked| parked.position.value() == position) else {
        return Err(ConsoleError::NotFound(format!("{name} has no parked event at {position}")));
    };
    let event: Option<RecordedEvent> = state
        .store
        .read_all(ReadAllOptions::after(Position::new(position.saturating_sub(1))).limit(1))
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .find(|event| event.position.value() == position);
    let body = html! {
        dl class="record" {
            dt { "Projection" } dd { a href=(access.link(&format!("/projections/{name}"))) { (name) } }
            dt { "Position" } dd { (position) }
            dt { "Type" } dd { code { (parked.event_type) } }
            dt { "Reason" } dd class="error-text" { (parked.error) }
            dt { "Attempts" } dd { (parked.attempts) }
            dt { "Parked" } dd { (time(&parked.parked_at)) }
        }
        @if let Some(event) = &event {
            h2 { "The event" }
            p { a href=(access.link(&format!("/streams/{}?from={}", segment(event.stream_id.as_str()), event.stream_version))) { (event.stream_id) " v" (event.stream_version) } }
            pre class="payload" { (crate::render::payload(&event.payload)) }
        }
        @if access.role == crate::Role::Admin && control.replay.is_some() {
            form method="post" action=(access.link(&format!("/projections/{name}/replay"))) class="confirm" {
                (csrf_field(&access))
                input type="hidden" name="position" value=(position);
                button type="submit" { "Replay this event" }
            }
        }
    };
    Ok(render::page(
        &state.config.title,
        &format!("Parked at {position}"),
        &access,
        Section::Projections,
        &body,
    ))
}
