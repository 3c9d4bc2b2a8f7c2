//! The console's home: the head of the log and a line per section.

use axum::Extension;
use axum::extract::State;
use axum::response::Html;
use maud::html;

use crate::auth::Access;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, count};
use crate::{ConsoleStore, Shared};

/// The overview page.
pub(crate) async fn page<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
) -> Result<Html<String>, ConsoleError> {
    let head = state.store.head_position().await?.value();
    let body = html! {
        dl class="record" {
            dt { "Tenant" } dd { (state.store.tenant()) }
            dt { "Head position" } dd { (count(head)) }
            dt { "Projections" } dd { (state.projections.len()) " registered" }
            dt { "Signed in as" } dd { (access.role.as_str()) }
        }
        ul class="sections" {
            li { a href=(access.link("/log")) { "The log" } ", live" }
            li { a href=(access.link("/streams")) { "Streams" } ", by id prefix or category" }
            li { a href=(access.link("/projections")) { "Projections" } ", their lag and parked events" }
            li { a href=(access.link("/subjects")) { "Subjects" } ", forgetting personal data" }
            li { a href=(access.link("/health")) { "Health" } }
        }
    };
    Ok(render::page(&state.config.title, "Overview", &access, Section::Overview, &body))
}
