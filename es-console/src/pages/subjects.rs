//! Personal-data subjects: the audit trail of forgetting, and forgetting one (admin, confirmed).

use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::response::Html;
use es_core::Subject;
use maud::html;
use serde::Deserialize;

use crate::auth::Access;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, csrf_field, notice, time};
use crate::{ConsoleStore, Shared};

/// The most audit entries a page shows.
const AUDIT_ROWS: usize = 200;

/// The longest reason kept.
const MAX_REASON: usize = 500;

#[derive(Deserialize, Default)]
pub(crate) struct Params {
    subject: Option<String>,
}

fn subject(text: Option<&str>) -> Result<Option<Subject>, ConsoleError> {
    match text.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => Subject::new(text)
            .map(Some)
            .map_err(|error| ConsoleError::BadRequest(format!("subject: {error}"))),
    }
}

/// The subjects page: the audit trail, all or one subject's.
pub(crate) async fn page<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Query(params): Query<Params>,
) -> Result<Html<String>, ConsoleError> {
    let subject = subject(params.subject.as_deref())?;
    render(&state, &access, subject.as_ref(), None).await
}

async fn render<S: ConsoleStore>(
    state: &crate::State<S>,
    access: &Access,
    subject: Option<&Subject>,
    outcome: Option<&str>,
) -> Result<Html<String>, ConsoleError> {
    if state.store.vault().is_none() {
        let body = html! { p class="empty" { "Personal data is not configured for this store (no master key)." } };
        return Ok(render::page(&state.config.title, "Subjects", access, Section::Subjects, &body));
    }
    let trail = state.store.audit_trail(subject.map(Subject::as_str), AUDIT_ROWS).await?;
    let forgotten = match subject {
        Some(subject) => Some(state.store.is_forgotten(subject.as_str()).await?),
        None => None,
    };
    let text = subject.map_or("", Subject::as_str);
    let body = html! {
        (notice(outcome))
        form method="get" action=(access.link("/subjects")) class="search" {
            label { "Subject " input name="subject" value=(text) placeholder="customer-42"; }
            button type="submit" { "Look up" }
        }
        @if let (Some(subject), Some(forgotten)) = (subject, forgotten) {
            p class="facts" id="subject-state" {
                code { (subject) } " is " strong { @if forgotten { "forgotten" } @else { "not forgotten" } } "."
                @if !forgotten && access.role == crate::Role::Admin {
                    " " a class="button" href=(access.link(&format!("/subjects/forget{}", super::query(&[("subject", subject.as_str())])))) { "Forget…" }
                }
            }
        }
        h2 { "Audit trail" }
        @if trail.is_empty() {
            p class="empty" { "No subject has been forgotten." }
        } @else {
            table id="audit" {
                thead { tr { th { "When" } th { "Subject (digest)" } th { "Actor" } th { "Reason" } } }
                tbody {
                    @for entry in &trail {
                        tr { td { (time(&entry.at)) } td { code { (entry.subject) } } td { (entry.actor) } td { (entry.reason) } }
                    }
                }
            }
        }
    };
    Ok(render::page(&state.config.title, "Subjects", access, Section::Subjects, &body))
}

/// The confirmation page of forgetting a subject.
pub(crate) async fn confirm<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Query(params): Query<Params>,
) -> Result<Html<String>, ConsoleError> {
    access.require_admin()?;
    let Some(subject) = subject(params.subject.as_deref())? else {
        return Err(ConsoleError::BadRequest("name the subject to forget".into()));
    };
    let body = html! {
        p { "Destroys the keys of " code { (subject) } "'s personal data: every event, snapshot and copy "
            "holding it reads as redacted from now on. This cannot be undone." }
        form method="post" action=(access.link("/subjects/forget")) class="confirm" {
            (csrf_field(&access))
            input type="hidden" name="subject" value=(subject);
            label { "Reason (kept in the audit trail) " input name="reason" required maxlength=(MAX_REASON) placeholder="erasure request #123"; }
            button type="submit" class="danger" { "Yes, forget " (subject) }
            " " a href=(access.link("/subjects")) { "Cancel" }
        }
    };
    Ok(render::page(&state.config.title, "Forget a subject?", &access, Section::Subjects, &body))
}

#[derive(Deserialize, Default)]
pub(crate) struct ForgetForm {
    subject: Option<String>,
    reason: Option<String>,
}

/// Forgets a subject, then shows its audit trail.
pub(crate) async fn forget<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
    Form(form): Form<ForgetForm>,
) -> Result<Html<String>, ConsoleError> {
    access.require_admin()?;
    let Some(subject) = subject(form.subject.as_deref())? else {
        return Err(ConsoleError::BadRequest("name the subject to forget".into()));
    };
    let reason = form.reason.as_deref().unwrap_or_default().trim();
    if reason.is_empty() || reason.len() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(ConsoleError::BadRequest(format!(
            "give a reason of 1 to {MAX_REASON} bytes without control characters"
        )));
    }
    let actor = format!("console ({})", access.role.as_str());
    let outcome = state.store.forget(subject.as_str(), reason, &actor).await?;
    // The subject is personal data: the log names only the outcome.
    tracing::info!(first_time = outcome.first_time, "es_console: a subject was forgotten");
    let message = if outcome.first_time {
        format!("Forgotten; {} snapshots removed.", outcome.snapshots_removed)
    } else {
        "It was already forgotten.".to_owned()
    };
    render(&state, &access, Some(&subject), Some(&message)).await
}
