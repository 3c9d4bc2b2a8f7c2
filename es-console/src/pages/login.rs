//! Signing in with a token (opening a session) and signing out.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, html};
use serde::Deserialize;

use crate::auth::{self, Access};
use crate::render::home;
use crate::{ConsoleStore, Shared};

/// Where the console is mounted, for the sign-in page (which runs before any access check).
#[derive(Clone)]
pub(crate) struct Base(pub(crate) String);

fn login_page(title: &str, base: &str, status: StatusCode, message: Option<&str>) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Sign in · " (title) }
                link rel="stylesheet" href={ (base) "/assets/console.css" };
            }
            body {
                main class="login" {
                    h1 { "Sign in to " (title) }
                    @if let Some(message) = message { p class="error" role="alert" { (message) } }
                    form method="post" action={ (base) "/login" } {
                        label for="token" { "Access token" }
                        input id="token" name="token" type="password" autocomplete="current-password" required;
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// The answer to a request without valid credentials: 401 and the sign-in form.
pub(crate) fn refused(title: &str, base: &str) -> Response {
    login_page(title, base, StatusCode::UNAUTHORIZED, Some("Sign in to use the console."))
}

/// The sign-in form.
pub(crate) async fn form<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(Base(base)): Extension<Base>,
) -> Response {
    login_page(&state.config.title, &base, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    token: String,
}

/// Opens a session for a valid token and goes to the console's home.
pub(crate) async fn sign_in<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(Base(base)): Extension<Base>,
    Form(form): Form<SignIn>,
) -> Response {
    let Some(role) = state.config.role_of_token(form.token.trim()) else {
        tracing::info!("es_console: a sign-in with an unknown token was refused");
        return login_page(
            &state.config.title,
            &base,
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid."),
        );
    };
    let (id, _) = state.sessions.open(role);
    tracing::info!(role = role.as_str(), "es_console: signed in");
    with_cookie(
        Redirect::to(&home(&base)).into_response(),
        &auth::set_cookie(&state.config, &base, Some(&id)),
    )
}

/// Closes the session and goes to the sign-in page.
pub(crate) async fn sign_out<S: ConsoleStore>(
    State(state): State<Arc<crate::State<S>>>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = auth::session_cookie(&headers) {
        state.sessions.close(id);
    }
    let target = access.link("/login");
    with_cookie(
        Redirect::to(&target).into_response(),
        &auth::set_cookie(&state.config, &access.base, None),
    )
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
