//! The operations console: web pages for the event log, projections, parked events, personal-data
//! subjects and tenants, that any application built on the framework mounts into its axum router.
//!
//! Server-rendered HTML with no JavaScript build step; the one small script (the live tail, the
//! projections' refresh) and the stylesheet are embedded in the binary. The console is **off**
//! unless configured: with no token and no authorizer every page answers 404.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use es_console::{Console, ConsoleConfig, ProjectionControl, Role};
//! use es_core::{MultiTenantStore, ProjectionName, TenantId};
//!
//! let store = es_memory::MemoryStore::new().tenant(TenantId::new("acme")?);
//! let config = ConsoleConfig::new()
//!     .token(&std::env::var("CONSOLE_ADMIN_TOKEN")?, Role::Admin)?
//!     .token(&std::env::var("CONSOLE_VIEWER_TOKEN")?, Role::ReadOnly)?;
//! let console = Console::new(store, config)
//!     .projection(ProjectionControl::new(ProjectionName::new("balances")?));
//! let app = axum::Router::new().nest("/console", console.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Security
//!
//! - Credentials: a bearer token (`Authorization: Bearer …`) on each request, or the token once on
//!   the sign-in page, which opens a session (a random 256-bit id in an `HttpOnly`,
//!   `SameSite=Strict`, by default `Secure` cookie). Tokens are kept as SHA-256 digests and
//!   compared in constant time. An [`Authorizer`] can admit callers by the application's own rule.
//! - Roles: [`Role::ReadOnly`] reads every page; [`Role::Admin`] also rebuilds, resets, replays
//!   and forgets.
//! - Every state change is a POST that passes a CSRF check (the session's token in the form, no
//!   cross-site `Sec-Fetch-Site`, a same-host `Origin`), and the destructive ones a confirmation.
//! - Every response carries a strict content security policy (no inline script or style, no
//!   framing), `nosniff`, a `same-origin` referrer policy and `no-store`. Every value on a page is escaped.
//! - Every input is checked with the store's own rules (ids, positions, page sizes) and refused
//!   with a 400 saying what was wrong. Nothing the console logs holds a payload or a subject.

mod auth;
mod config;
mod control;
mod error;
mod live;
mod pages;
mod render;
mod security;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use es_core::pii::PersonalData;
use es_core::projection::{CheckpointStore, DeadLetterStore};
use es_core::quota::TenantUsage;
use es_core::{EventStore, StoreError, StreamCatalog};
use futures_util::future::BoxFuture;

pub use config::{Authorizer, ConfigError, ConsoleConfig, MIN_TOKEN_LEN, Role};
pub use control::{ActionResult, ProjectionControl, ProjectionStatus};

/// The store capabilities the console reads: the log, the stream catalog, checkpoints, parked
/// events and personal data. Both backends' tenant handles have them all.
pub trait ConsoleStore:
    EventStore + StreamCatalog + CheckpointStore + DeadLetterStore + PersonalData
{
}

impl<S> ConsoleStore for S where
    S: EventStore + StreamCatalog + CheckpointStore + DeadLetterStore + PersonalData
{
}

type Stop = futures_util::future::Shared<BoxFuture<'static, ()>>;
type Usage =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Vec<TenantUsage>, StoreError>> + Send + Sync>;
type Health = Arc<dyn Fn() -> BoxFuture<'static, Vec<HealthCheck>> + Send + Sync>;

/// One line of the health page that the application adds (the read horizon, the outbox's depth).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthCheck {
    /// What is checked.
    pub name: String,
    /// What it reads.
    pub value: String,
    /// Whether that is fine.
    pub ok: bool,
}

impl HealthCheck {
    /// A check.
    pub fn new(name: impl Into<String>, value: impl Into<String>, ok: bool) -> Self {
        Self { name: name.into(), value: value.into(), ok }
    }
}

/// The console of one tenant's store: build it, add the projections and hooks, take its
/// [`router`](Self::router).
pub struct Console<S> {
    store: S,
    config: ConsoleConfig,
    projections: Vec<ProjectionControl>,
    usage: Option<Usage>,
    health: Option<Health>,
    stop: Option<Stop>,
}

impl<S: ConsoleStore> Console<S> {
    /// A console of `store`, let in by `config`.
    pub fn new(store: S, config: ConsoleConfig) -> Self {
        Self { store, config, projections: Vec::new(), usage: None, health: None, stop: None }
    }

    /// Shows a projection (its checkpoint, lag and parked events) and offers its actions.
    #[must_use]
    pub fn projection(mut self, control: ProjectionControl) -> Self {
        self.projections.push(control);
        self
    }

    /// Shows every tenant's usage against its quotas (from
    /// [`TenantQuotas::tenants_usage`](es_core::quota::TenantQuotas::tenants_usage)).
    #[must_use]
    pub fn tenants<F, Fut>(mut self, usage: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<TenantUsage>, StoreError>> + Send + 'static,
    {
        self.usage = Some(Arc::new(move || Box::pin(usage())));
        self
    }

    /// Adds the application's checks to the health page.
    #[must_use]
    pub fn health<F, Fut>(mut self, checks: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<HealthCheck>> + Send + 'static,
    {
        self.health = Some(Arc::new(move || Box::pin(checks())));
        self
    }

    /// Ends the live tails (server-sent events never end on their own) when `signal` completes:
    /// give it the application's shutdown signal, so a graceful shutdown need not wait for the
    /// browsers that follow the log. Their pages reconnect to the next instance.
    #[must_use]
    pub fn live_until<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.stop =
            Some(futures_util::FutureExt::shared(Box::pin(signal) as BoxFuture<'static, ()>));
        self
    }

    /// The console's routes, to mount under any prefix (`Router::nest("/console", …)`) or at
    /// the root.
    pub fn router(self) -> Router {
        let state = Arc::new(State {
            sessions: auth::Sessions::new(self.config.session_ttl),
            store: self.store,
            config: self.config,
            projections: self.projections,
            usage: self.usage,
            health: self.health,
            stop: self.stop,
        });
        Router::new()
            .route("/", get(pages::overview::page::<S>))
            .route("/login", get(pages::login::form::<S>).post(pages::login::sign_in::<S>))
            .route("/logout", post(pages::login::sign_out::<S>))
            .route("/streams", get(pages::streams::list::<S>))
            .route("/streams/{id}", get(pages::stream::page::<S>))
            .route("/log", get(pages::log::page::<S>))
            .route("/log/live", get(live::events::<S>))
            .route("/projections", get(pages::projections::list::<S>))
            .route("/projections/{name}", get(pages::projections::detail::<S>))
            .route(
                "/projections/{name}/{action}",
                get(pages::projections::confirm::<S>).post(pages::projections::act::<S>),
            )
            .route("/projections/{name}/parked/{position}", get(pages::parked::inspect::<S>))
            .route("/subjects", get(pages::subjects::page::<S>))
            .route(
                "/subjects/forget",
                get(pages::subjects::confirm::<S>).post(pages::subjects::forget::<S>),
            )
            .route("/tenants", get(pages::tenants::page::<S>))
            .route("/health", get(pages::health::page::<S>))
            .route("/assets/console.css", get(security::stylesheet))
            .route("/assets/console.js", get(security::script))
            .fallback(pages::not_found)
            .layer(axum::middleware::from_fn_with_state(state.clone(), security::guard::<S>))
            .layer(axum::middleware::from_fn(security::headers))
            .with_state(state)
    }
}

/// What every handler shares.
pub(crate) struct State<S> {
    pub(crate) store: S,
    pub(crate) config: ConsoleConfig,
    pub(crate) sessions: auth::Sessions,
    pub(crate) projections: Vec<ProjectionControl>,
    pub(crate) usage: Option<Usage>,
    pub(crate) health: Option<Health>,
    pub(crate) stop: Option<Stop>,
}

impl<S> State<S> {
    /// The registered projection of this name.
    pub(crate) fn control(&self, name: &str) -> Result<&ProjectionControl, error::ConsoleError> {
        self.projections
            .iter()
            .find(|control| control.name().as_str() == name)
            .ok_or_else(|| error::ConsoleError::NotFound(format!("no projection named {name:?}")))
    }
}

pub(crate) type Shared<S> = axum::extract::State<Arc<State<S>>>;
