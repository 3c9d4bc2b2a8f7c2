//! The layers every console response passes: the access guard (credentials, roles, CSRF) and the
//! security headers; and the embedded assets.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{NestedPath, OriginalUri, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{self, Access, Admitted};
use crate::error::ConsoleError;
use crate::{ConsoleStore, pages};

/// The content security policy: the console's own stylesheet and script, nothing inline, no
/// framing, forms that post only to the console.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every response.
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // `same-origin`, not `no-referrer`: with no referrer, browsers send `Origin: null` on a
        // form post, and the CSRF check needs the real origin.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Where the console is mounted: the part of the original path before the console's own.
fn base_of(request: &Request) -> String {
    if let Some(nested) = request.extensions().get::<NestedPath>() {
        return nested.as_str().trim_end_matches('/').to_owned();
    }
    let original = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path().to_owned(), |uri| uri.path().to_owned());
    original.strip_suffix(request.uri().path()).unwrap_or_default().to_owned()
}

/// Lets in whom the configuration admits, with their role; checks every state change for CSRF.
pub(crate) async fn guard<S: ConsoleStore>(
    State(state): State<Arc<crate::State<S>>>,
    request: Request,
    next: Next,
) -> Response {
    match admit(&state, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn admit<S: ConsoleStore>(
    state: &crate::State<S>,
    mut request: Request,
    next: Next,
) -> Result<Response, Response> {
    if !state.config.is_enabled() {
        return Err(ConsoleError::Disabled.into_response());
    }
    let path = request.uri().path().to_owned();
    if path.starts_with("/assets/") {
        return Ok(next.run(request).await);
    }
    let base = base_of(&request);
    if path == "/login" {
        if auth::changes_state(request.method()) {
            // The sign-in form has no session to check a token against: its site only.
            auth::check_site(request.headers()).map_err(IntoResponse::into_response)?;
        }
        request.extensions_mut().insert(pages::login::Base(base));
        return Ok(next.run(request).await);
    }
    let Some(admitted) = auth::admit(&state.config, &state.sessions, request.headers()) else {
        return Err(pages::login::refused(&state.config.title, &base));
    };
    let mut opened = None;
    let (role, csrf) = match admitted {
        Admitted::Session { role, csrf } => (role, Some(csrf)),
        Admitted::Bearer(role) => (role, None),
        Admitted::Authorizer(role) => {
            let (id, csrf) = state.sessions.open(role);
            opened = Some(id);
            (role, Some(csrf))
        }
    };
    if auth::changes_state(request.method())
        && let Some(expected) = &csrf
    {
        request = auth::check_csrf(request, expected).await.map_err(IntoResponse::into_response)?;
    }
    request.extensions_mut().insert(Access { role, csrf, base: base.clone() });
    let mut response = next.run(request).await;
    if let Some(id) = opened {
        let cookie = auth::set_cookie(&state.config, &base, Some(&id));
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// The stylesheet.
pub(crate) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../assets/console.css"))
}

/// The script: the live tail and the projections' refresh (the pages work without it).
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../assets/console.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], Body::from(body)).into_response()
}
