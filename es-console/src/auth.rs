//! Who is asking: console sessions (a cookie after signing in with a token), bearer tokens, the
//! application's authorizer; and the CSRF check every state change passes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, header};
use parking_lot::Mutex;

use crate::config::{ConsoleConfig, Role, constant_time_eq};
use crate::error::ConsoleError;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "es_console_session";

/// The most sessions kept; past it, the oldest goes first.
const MAX_SESSIONS: usize = 10_000;

/// The largest form body the console reads (its forms hold a token, a subject and a reason).
pub(crate) const MAX_FORM_BYTES: usize = 16 * 1024;

/// A caller let in, as handlers see it.
#[derive(Clone, Debug)]
pub(crate) struct Access {
    /// What the caller may do.
    pub(crate) role: Role,
    /// The session's CSRF token, which every form carries back; `None` for a caller who sends its
    /// credentials itself on each request (a bearer token), which a browser never does for it.
    pub(crate) csrf: Option<String>,
    /// Where the console is mounted (`""` at the root, else `"/console"`, say).
    pub(crate) base: String,
}

impl Access {
    /// Refuses a read-only caller.
    pub(crate) fn require_admin(&self) -> Result<(), ConsoleError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden("this action needs the admin role".into()))
        }
    }

    /// A path of the console, under its mount point.
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

struct Session {
    role: Role,
    csrf: String,
    expires: Instant,
    created: Instant,
}

/// The signed-in sessions, in memory (a restart signs everyone out).
pub(crate) struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

/// 256 random bits, as hex.
fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Sessions {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { sessions: Mutex::new(HashMap::new()), ttl }
    }

    /// Opens a session; returns its id (the cookie's value) and its CSRF token.
    pub(crate) fn open(&self, role: Role) -> (String, String) {
        let now = Instant::now();
        let id = random_secret();
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, session| session.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, s)| s.created).map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        let csrf = random_secret();
        let session = Session { role, csrf: csrf.clone(), expires: now + self.ttl, created: now };
        sessions.insert(id.clone(), session);
        (id, csrf)
    }

    /// The role and CSRF token of a live session.
    fn find(&self, id: &str) -> Option<(Role, String)> {
        let mut sessions = self.sessions.lock();
        let session = sessions.get(id)?;
        if session.expires <= Instant::now() {
            sessions.remove(id);
            return None;
        }
        Some((session.role, session.csrf.clone()))
    }

    pub(crate) fn close(&self, id: &str) {
        self.sessions.lock().remove(id);
    }
}

/// The session id the request's cookie carries.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == COOKIE).then_some(value))
}

/// The `Set-Cookie` value for a session (or, with `None`, one that removes it).
pub(crate) fn set_cookie(config: &ConsoleConfig, base: &str, session: Option<&str>) -> String {
    let path = if base.is_empty() { "/" } else { base };
    let secure = if config.secure_cookie { "; Secure" } else { "" };
    match session {
        Some(id) => format!(
            "{COOKIE}={id}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            config.session_ttl.as_secs()
        ),
        None => format!("{COOKIE}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// How a request was let in.
pub(crate) enum Admitted {
    /// By a session: forms must carry its CSRF token.
    Session { role: Role, csrf: String },
    /// By credentials the caller sends itself (bearer token).
    Bearer(Role),
    /// By the application's authorizer: ambient credentials, so a session is opened for it and
    /// its forms carry that session's token.
    Authorizer(Role),
}

/// Who the request's credentials name.
pub(crate) fn admit(
    config: &ConsoleConfig,
    sessions: &Sessions,
    headers: &HeaderMap,
) -> Option<Admitted> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    {
        // A bearer token that is wrong refuses the request; it never falls back to a cookie.
        return config.role_of_token(bearer.trim()).map(Admitted::Bearer);
    }
    if let Some((role, csrf)) = session_cookie(headers).and_then(|id| sessions.find(id)) {
        return Some(Admitted::Session { role, csrf });
    }
    config.role_of_headers(headers).map(Admitted::Authorizer)
}

/// Whether a request changes state (everything but GET and HEAD).
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

/// The checks a state change from a browser session passes before its handler runs: not sent
/// from another site (`Sec-Fetch-Site`, `Origin`), and its form's `csrf` field is the session's.
/// Returns the request with its body (read here, at most [`MAX_FORM_BYTES`]) put back.
pub(crate) async fn check_csrf(
    request: Request<Body>,
    expected: &str,
) -> Result<Request<Body>, ConsoleError> {
    let headers = request.headers();
    check_site(headers)?;
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Err(ConsoleError::Forbidden("a request from another origin".into()));
        }
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
        ConsoleError::BadRequest(format!("a form is at most {MAX_FORM_BYTES} bytes"))
    })?;
    let presented = form_field(&bytes, "csrf").unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        return Err(ConsoleError::Forbidden(
            "the form's CSRF token is missing or stale: reload the page and try again".into(),
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Refuses a request a browser says it sent from another site (`Sec-Fetch-Site`); a request
/// without the header (an older browser, a script) passes to the other checks.
pub(crate) fn check_site(headers: &HeaderMap) -> Result<(), ConsoleError> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) if !matches!(site, "same-origin" | "none") => {
            Err(ConsoleError::Forbidden(format!("a request from another site ({site})")))
        }
        _ => Ok(()),
    }
}

/// A field of a URL-encoded form.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find_map(|(key, value)| (key == name).then_some(value))
}
