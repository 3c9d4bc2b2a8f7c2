//! What a console request can fail with, and the page each failure answers.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use es_core::StoreError;
use maud::html;

/// Why a console request failed. Bad input is a 4xx with what was wrong, never a 500.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    /// A parameter the console refuses (an invalid id, a page size out of range).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing there (a stream with no events, an unknown projection).
    #[error("{0}")]
    NotFound(String),
    /// Credentials that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The console is off (no token and no authorizer configured).
    #[error("not found")]
    Disabled,
    /// The store failed; the details go to the log, not the page.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    /// An action the application provides (a rebuild, a replay) failed.
    #[error("{0}")]
    Action(String),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) | Self::Disabled => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Action(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Store(error) => {
                tracing::warn!(%error, "es_console: the store failed");
                "the store failed; see the application's log".to_owned()
            }
            other => other.to_string(),
        };
        let page = html! {
            (maud::DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { (status.as_u16()) " · es console" } }
                body {
                    main class="error" {
                        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                        p class="message" { (message) }
                    }
                }
            }
        };
        (status, Html(page.into_string())).into_response()
    }
}
