//! Projections: status, checkpoint, lag over time, parked events; rebuild, reset and replay,
//! each behind a confirmation.

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::Html;
use es_core::Position;
use es_core::projection::ParkedEvent;
use maud::{Markup, html};
use serde::Deserialize;

use super::number;
use crate::auth::Access;
use crate::control::ProjectionControl;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, count, csrf_field, notice, sparkline, time};
use crate::{ConsoleStore, Shared};

/// What the console shows of one projection.
pub(crate) struct Report {
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) checkpoint: u64,
    pub(crate) lag: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) parked: Vec<ParkedEvent>,
    pub(crate) lags: Vec<u64>,
}

/// Reads a projection's status (the application's hook, else the store's checkpoint), its
/// parked events and lag, and records the lag in its history.
pub(crate) async fn report<S: ConsoleStore>(
    store: &S,
    control: &ProjectionControl,
    head: u64,
) -> Result<Report, ConsoleError> {
    let (state, checkpoint, mut last_error) = match &control.status {
        Some(status) => {
            let status = status().await;
            (status.state, status.checkpoint, status.last_error)
        }
        None => ("stored".to_owned(), store.load_checkpoint(control.name()).await?, None),
    };
    let parked = store.parked(control.name()).await?;
    if last_error.is_none() {
        last_error = parked.last().map(|parked| parked.error.clone());
    }
    let checkpoint = checkpoint.map_or(0, Position::value);
    let lag = head.saturating_sub(checkpoint);
    control.history.record(lag);
    Ok(Report {
        name: control.name().to_string(),
        state,
        checkpoint,
        lag,
        last_error,
        parked,
        lags: control.history.lags(),
    })
}

fn table(access: &Access, reports: &[Report]) -> Markup {
    html! {
        table id="projections" {
            thead { tr { th { "Projection" } th { "State" } th class="num" { "Checkpoint" } th class="num" { "Lag" } th { "Lag over time" } th class="num" { "Parked" } th { "Last error" } } }
            tbody {
                @for report in reports {
                    tr data-projection=(report.name) {
                        td { a href=(access.link(&format!("/projections/{}", report.name))) { (report.name) } }
                        td { (report.state) }
                        td class="num" { (count(report.checkpoint)) }
                        td class="num lag" { (count(report.lag)) }
                        td { (sparkline(&report.lags)) }
                        td class="num" { (report.parked.len()) }
                        td class="error-text" { (report.last_error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// The projections page.
pub(crate) async fn list<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
) -> Result<Html<String>, ConsoleError> {
    let head = state.store.head_position().await?.value();
    let mut reports = Vec::with_capacity(state.projections.len());
    for control in &state.projections {
        reports.push(report(&state.store, control, head).await?);
    }
    let body = html! {
        p class="facts" { "Head position " strong { (count(head)) } }
        @if reports.is_empty() {
            p class="empty" { "The application registered no projections with the console." }
        } @else {
            div data-refresh="5" { (table(&access, &reports)) }
        }
    };
    Ok(render::page(&state.config.title, "Projections", &access, Section::Projections, &body))
}

/// One projection: its status, its parked events and its actions.
pub(crate) async fn detail<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Result<Html<String>, ConsoleError> {
    render_detail(&state, &access, &name, None).await
}

async fn render_detail<S: ConsoleStore>(
    state: &crate::State<S>,
    access: &Access,
    name: &str,
    outcome: Option<&str>,
) -> Result<Html<String>, ConsoleError> {
    let control = state.control(name)?;
    let head = state.store.head_position().await?.value();
    let report = report(&state.store, control, head).await?;
    let admin = access.role == crate::Role::Admin;
    let base = format!("/projections/{name}");
    let body = html! {
        (notice(outcome))
        (table(access, std::slice::from_ref(&report)))
        @if admin {
            p class="actions" {
                @if control.rebuild.is_some() { a class="button" href=(access.link(&format!("{base}/rebuild"))) { "Rebuild…" } }
                @if control.reset.is_some() { a class="button" href=(access.link(&format!("{base}/reset"))) { "Reset…" } }
                @if control.replay.is_some() && !report.parked.is_empty() { a class="button" href=(access.link(&format!("{base}/replay"))) { "Replay all parked…" } }
            }
        }
        h2 { "Parked events" }
        @if report.parked.is_empty() {
            p class="empty" id="no-parked" { "None." }
        } @else {
            table id="parked" {
                thead { tr { th class="num" { "Position" } th { "Type" } th { "Reason" } th class="num" { "Attempts" } th { "Parked" } } }
                tbody {
                    @for parked in &report.parked {
                        tr {
                            td class="num" { a href=(access.link(&format!("{base}/parked/{}", parked.position.value()))) { (parked.position.value()) } }
                            td { code { (parked.event_type) } }
                            td class="error-text" { (parked.error) }
                            td class="num" { (parked.attempts) }
                            td { (time(&parked.parked_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(render::page(
        &state.config.title,
        &format!("Projection {name}"),
        access,
        Section::Projections,
        &body,
    ))
}

/// The actions a projection page offers.
#[derive(Clone, Copy)]
enum Action {
    Rebuild,
    Reset,
    Replay,
}

impl Action {
    const ALL: [Self; 3] = [Self::Rebuild, Self::Reset, Self::Replay];

    /// The action's name: its path segment and its button's word.
    fn name(self) -> &'static str {
        match self {
            Self::Rebuild => "rebuild",
            Self::Reset => "reset",
            Self::Replay => "replay",
        }
    }

    fn parse(text: &str) -> Result<Self, ConsoleError> {
        Self::ALL
            .into_iter()
            .find(|action| action.name() == text)
            .ok_or_else(|| ConsoleError::NotFound(format!("no projection action {text:?}")))
    }

    /// Whether the application gave `control` a hook for this action.
    fn offered(self, control: &ProjectionControl) -> bool {
        match self {
            Self::Rebuild => control.rebuild.is_some(),
            Self::Reset => control.reset.is_some(),
            Self::Replay => control.replay.is_some(),
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Self::Rebuild => {
                "Rebuilds the projection from the start of the log beside the one serving, then switches to it."
            }
            Self::Reset => {
                "Moves the projection back to the start of the log: it handles every event again."
            }
            Self::Replay => {
                "Hands the parked events to the projection again; those that now succeed leave the list."
            }
        }
    }
}

/// The confirmation page of an action.
pub(crate) async fn confirm<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Html<String>, ConsoleError> {
    let control = state.control(&name)?;
    let action = Action::parse(&action)?;
    access.require_admin()?;
    if !action.offered(control) {
        return Err(not_offered(control));
    }
    let path = action.name();
    let body = html! {
        p { (action.explain()) }
        form method="post" action=(access.link(&format!("/projections/{name}/{path}"))) class="confirm" {
            (csrf_field(&access))
            button type="submit" class="danger" { "Yes, " (path) " " (name) }
            " "
            a href=(access.link(&format!("/projections/{name}"))) { "Cancel" }
        }
    };
    Ok(render::page(
        &state.config.title,
        &format!("{path} {name}?"),
        &access,
        Section::Projections,
        &body,
    ))
}

fn not_offered(control: &ProjectionControl) -> ConsoleError {
    ConsoleError::NotFound(format!("the application offers no such action for {}", control.name()))
}

#[derive(Deserialize, Default)]
pub(crate) struct ActForm {
    position: Option<String>,
}

/// Runs a confirmed action and shows the projection with its outcome.
pub(crate) async fn act<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Result<Html<String>, ConsoleError> {
    let control = state.control(&name)?;
    let action = Action::parse(&action)?;
    access.require_admin()?;
    let position = number("position", form.position.as_deref())?.map(Position::new);
    let outcome = match action {
        Action::Rebuild => control.rebuild.as_ref().map(|run| run()),
        Action::Reset => control.reset.as_ref().map(|run| run()),
        Action::Replay => control.replay.as_ref().map(|run| run(position)),
    }
    .ok_or_else(|| not_offered(control))?;
    tracing::info!(projection = %name, role = access.role.as_str(), "es_console: projection action");
    let message = outcome.await.map_err(ConsoleError::Action)?;
    render_detail(&state, &access, &name, Some(&message)).await
}
