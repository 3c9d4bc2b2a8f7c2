//! The store's health: the head, the projections' lag, and the application's own checks (the
//! read horizon and the sessions holding it back, the outbox's depth and age).

use axum::Extension;
use axum::extract::State;
use axum::response::Html;
use maud::html;

use crate::auth::Access;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, count};
use crate::{ConsoleStore, Shared};

/// The health page.
pub(crate) async fn page<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
) -> Result<Html<String>, ConsoleError> {
    let head = state.store.head_position().await?.value();
    let mut lags = Vec::new();
    for control in &state.projections {
        let report = super::projections::report(&state.store, control, head).await?;
        lags.push((report.name, report.lag, report.parked.len()));
    }
    let checks = match &state.health {
        Some(checks) => checks().await,
        None => Vec::new(),
    };
    let body = html! {
        table id="health" {
            tbody {
                tr { th { "Head position" } td class="num" { (count(head)) } td { "ok" } }
                @for (name, lag, parked) in &lags {
                    tr {
                        th { "Projection " (name) }
                        td class="num" { "lag " (count(*lag)) ", " (parked) " parked" }
                        td { @if *parked == 0 { "ok" } @else { strong class="error-text" { "parked events" } } }
                    }
                }
                @for check in &checks {
                    tr {
                        th { (check.name) }
                        td class="num" { (check.value) }
                        td { @if check.ok { "ok" } @else { strong class="error-text" { "attention" } } }
                    }
                }
            }
        }
    };
    Ok(render::page(&state.config.title, "Health", &access, Section::Health, &body))
}
