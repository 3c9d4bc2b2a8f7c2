//! What the console lets in: access tokens and their roles, or a check of the application's own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read every page; change nothing.
    ReadOnly,
    /// Read every page, and rebuild, reset, replay and forget.
    Admin,
}

impl Role {
    /// The role's name, as pages show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::Admin => "admin",
        }
    }
}

/// A check of the application's own: the request's headers in, the caller's role out (`None`
/// refuses). Runs on every request that carries no console session.
pub type Authorizer = Arc<dyn Fn(&HeaderMap) -> Option<Role> + Send + Sync>;

/// The shortest token the console accepts (bytes): a token is a password nobody types twice.
pub const MIN_TOKEN_LEN: usize = 24;

/// A configuration the console refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A token shorter than [`MIN_TOKEN_LEN`] bytes, or holding whitespace or control characters.
    #[error(
        "a console token must be at least {MIN_TOKEN_LEN} bytes of visible characters (got {length} bytes)"
    )]
    WeakToken {
        /// The length of the token refused.
        length: usize,
    },
}

/// The console's configuration. With neither a token nor an [`Authorizer`], the console is off:
/// every page answers 404.
///
/// ```
/// use es_console::{ConsoleConfig, Role};
/// let config = ConsoleConfig::new()
///     .token("an-admin-token-of-some-length", Role::Admin)?
///     .token("a-viewer-token-of-some-length", Role::ReadOnly)?;
/// assert!(config.is_enabled());
/// assert!(!ConsoleConfig::new().is_enabled());
/// assert!(ConsoleConfig::new().token("short", Role::Admin).is_err());
/// # Ok::<(), es_console::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ConsoleConfig {
    tokens: Vec<([u8; 32], Role)>,
    authorizer: Option<Authorizer>,
    pub(crate) session_ttl: Duration,
    pub(crate) secure_cookie: bool,
    pub(crate) title: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens, not even their digests.
        f.debug_struct("ConsoleConfig")
            .field("tokens", &self.tokens.len())
            .field("authorizer", &self.authorizer.is_some())
            .field("session_ttl", &self.session_ttl)
            .field("secure_cookie", &self.secure_cookie)
            .finish_non_exhaustive()
    }
}

impl ConsoleConfig {
    /// A console that is off until a token or an authorizer is added. Sessions last 8 hours; the
    /// session cookie is `Secure` (sent over HTTPS only: call
    /// [`insecure_cookie`](Self::insecure_cookie) for plain HTTP on loopback).
    pub fn new() -> Self {
        Self {
            tokens: Vec::new(),
            authorizer: None,
            session_ttl: Duration::from_hours(8),
            secure_cookie: true,
            title: "es console".to_owned(),
        }
    }

    /// Lets in whoever presents `token` (as `Authorization: Bearer`, or once on the sign-in page),
    /// with `role`. Only its SHA-256 digest is kept.
    pub fn token(mut self, token: &str, role: Role) -> Result<Self, ConfigError> {
        if token.len() < MIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::WeakToken { length: token.len() });
        }
        self.tokens.push((digest(token), role));
        Ok(self)
    }

    /// Lets in whoever `authorizer` admits (for an application's own authentication, such as a
    /// reverse proxy's verified header). Tokens are checked first.
    #[must_use]
    pub fn authorizer(mut self, authorizer: Authorizer) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// How long a sign-in lasts.
    #[must_use]
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Sends the session cookie over plain HTTP too (loopback and tests only).
    #[must_use]
    pub fn insecure_cookie(mut self) -> Self {
        self.secure_cookie = false;
        self
    }

    /// The title pages show (the application's name).
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Whether anyone can get in.
    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty() || self.authorizer.is_some()
    }

    /// The role of a presented token, compared digest to digest in constant time.
    pub(crate) fn role_of_token(&self, token: &str) -> Option<Role> {
        let presented = digest(token);
        let mut found = None;
        for (known, role) in &self.tokens {
            if constant_time_eq(known, &presented) {
                found = Some(*role);
            }
        }
        found
    }

    /// The role the application's authorizer gives these headers.
    pub(crate) fn role_of_headers(&self, headers: &HeaderMap) -> Option<Role> {
        self.authorizer.as_ref().and_then(|authorizer| authorizer(headers))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal bytes, in a time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
