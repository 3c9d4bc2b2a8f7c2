//! The HTTP API (axum): JSON in and out, 4xx with a JSON body that says what was wrong,
//! Prometheus `/metrics`, liveness and readiness.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use serde_json::json;

use es::StoreError;

use super::account::AccountError;
use super::error::BankError;
use super::service::Bank;
use super::store::BankStore;
use super::transfer::TransferError;

/// A JSON body whose rejection is a JSON 400 (or 415) like every other error.
pub struct Body<T>(pub T);

impl<T, St> FromRequest<St> for Body<T>
where
    Json<T>: FromRequest<St, Rejection = JsonRejection>,
    St: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &St) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                Err(error_body(rejection.status(), "invalid_body", &rejection.body_text()))
            }
        }
    }
}

fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

impl IntoResponse for BankError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = match &self {
            Self::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Account(refused) => match refused {
                AccountError::NotFound => (StatusCode::NOT_FOUND, "account_not_found"),
                AccountError::AlreadyOpen => (StatusCode::CONFLICT, "account_exists"),
                AccountError::Closed => (StatusCode::CONFLICT, "account_closed"),
                AccountError::NotEmpty(_) => (StatusCode::CONFLICT, "account_not_empty"),
                AccountError::InvalidAmount(_) => (StatusCode::BAD_REQUEST, "invalid_amount"),
                AccountError::BalanceOverflow { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "balance_overflow")
                }
                AccountError::InsufficientFunds { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds")
                }
            },
            Self::Transfer(refused) => match refused {
                TransferError::AlreadyRequested => (StatusCode::CONFLICT, "transfer_exists"),
                TransferError::InvalidState(_) => (StatusCode::CONFLICT, "transfer_state"),
                TransferError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_transfer"),
            },
            Self::Unstorable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unstorable_value"),
            Self::Contention(_) => (StatusCode::SERVICE_UNAVAILABLE, "contention"),
            Self::Stale(_) => (StatusCode::SERVICE_UNAVAILABLE, "view_behind"),
            Self::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            // The tenant's limit, named with the figures (nothing was written).
            Self::Store(StoreError::QuotaExceeded(exceeded)) => {
                let code = if exceeded.quota == es::quota::Quota::AppendRate {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::INSUFFICIENT_STORAGE
                };
                (code, "quota_exceeded")
            }
            Self::Store(StoreError::PersonalData(es::pii::PiiError::SubjectForgotten {
                ..
            })) => (StatusCode::GONE, "subject_forgotten"),
            Self::Store(StoreError::Backend { .. }) => {
                // A lost connection, a restarting server: the client may retry (with the same
                // Idempotency-Key, a retry of a write is safe whatever happened to the first).
                tracing::warn!(error = %message, "bank.http: the store is unavailable");
                let mut response = error_body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; retry shortly (writes: with the same Idempotency-Key)",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                return response;
            }
            Self::Store(_) | Self::Internal(_) => {
                // The details go to the log, not to the client.
                tracing::error!(error = %message, "bank.http: internal failure");
                return error_body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the service log",
                );
            }
        };
        let mut response = error_body(status, code, &message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, BankError> {
    headers
        .get("idempotency-key")
        .map(|value| {
            value.to_str().map_err(|_| BankError::invalid("idempotency-key", "not visible ASCII"))
        })
        .transpose()
}

/// The process-wide Prometheus recorder (installed once; every app in the process shares it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
        // Gauges not updated for 5 minutes are dropped: a rebuild's staging series
        // (`….rebuild`) goes once the rebuild is promoted, while live projections update theirs
        // on every pass (and `/metrics` refreshes the bank's lag gauges at each scrape).
        let builder = PrometheusBuilder::new()
            .idle_timeout(metrics_util::MetricKindMask::GAUGE, Some(Duration::from_mins(5)))
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "bank.http: another metrics recorder is installed; /metrics will be empty"
            );
        }
        handle
    })
}

/// The API over `bank`.
pub fn router<S: BankStore>(bank: Arc<Bank<S>>) -> Router {
    Router::new()
        .route("/accounts", post(open::<S>))
        .route("/accounts/{id}", get(account::<S>))
        .route("/accounts/{id}/statement", get(statement::<S>))
        .route("/accounts/{id}/deposits", post(deposit::<S>))
        .route("/accounts/{id}/withdrawals", post(withdraw::<S>))
        .route("/accounts/{id}/close", post(close::<S>))
        .route("/transfers", post(transfer::<S>))
        .route("/transfers/{id}", get(transfer_status::<S>))
        .route("/totals", get(totals::<S>))
        .route("/admin/projections", get(projections::<S>))
        .route("/admin/projections/{name}/rebuild", post(rebuild::<S>))
        .route("/admin/accounts/{id}/forget", post(forget::<S>))
        .route("/health/live", get(|| async { Json(json!({ "status": "live" })) }))
        .route("/health/ready", get(ready::<S>))
        .route("/metrics", get(render_metrics::<S>))
        .fallback(|| async { error_body(StatusCode::NOT_FOUND, "no_route", "no such endpoint") })
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn(observe))
        .with_state(bank)
}

/// How long a request may take, body included (a client that stops sending mid-body gets a 408
/// instead of holding a task for ever). Queries wait at most 5 s for a view, so 30 s is ample.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every error is JSON: responses the router or an extractor made without a JSON body (405 with an
/// empty body, a path that is not UTF-8, a missing header) get the house error body, keeping their
/// status; requests that outlive [`REQUEST_TIMEOUT`] get a 408.
async fn json_errors(request: Request, next: Next) -> Response {
    let Ok(response) = tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await else {
        return error_body(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took too long to arrive or to answer",
        );
    };
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this endpoint does not take that method")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("body_too_large", "the body is larger than the service accepts")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "send JSON with content-type: application/json")
        }
        status if status.is_client_error() => {
            ("bad_request", "the request is malformed (path, query or headers)")
        }
        _ => ("internal", "internal error; see the service log"),
    };
    let mut answer = error_body(status, code, message);
    // Keep what the protocol needs (Allow on a 405, Retry-After on a 503).
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

/// A span per request, and request counts and latencies by route and status.
async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    let span = tracing::info_span!("http.request", %method, %route, status = tracing::field::Empty);
    let started = Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    let elapsed = started.elapsed();
    tracing::debug!(parent: &span, elapsed_ms = elapsed.as_secs_f64() * 1e3, "bank.http: answered");
    let labels = [("method", method), ("route", route), ("status", status.to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    id: String,
    owner: String,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetBody {
    /// Why (a ticket number; no personal data).
    reason: String,
    /// Who asks (an operator id).
    actor: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountBody {
    cents: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    id: Option<String>,
    from: String,
    to: String,
    cents: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    /// Wait until the view has applied this position (from a write's answer).
    after: Option<u64>,
    /// Statement lines (default 50, at most 1,000).
    limit: Option<usize>,
}

type Answer = Result<Response, BankError>;

fn read_query(query: Result<Query<ReadQuery>, QueryRejection>) -> Result<ReadQuery, BankError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejection| BankError::invalid("query", rejection.body_text()))
}

async fn open<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    headers: HeaderMap,
    Body(body): Body<OpenBody>,
) -> Answer {
    let written =
        bank.open(&body.id, &body.owner, body.email.as_deref(), idempotency_key(&headers)?).await?;
    Ok((StatusCode::CREATED, Json(written)).into_response())
}

async fn deposit<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<AmountBody>,
) -> Answer {
    Ok(Json(bank.deposit(&id, body.cents, idempotency_key(&headers)?).await?).into_response())
}

async fn withdraw<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<AmountBody>,
) -> Answer {
    Ok(Json(bank.withdraw(&id, body.cents, idempotency_key(&headers)?).await?).into_response())
}

async fn close<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    Ok(Json(bank.close(&id, idempotency_key(&headers)?).await?).into_response())
}

async fn account<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Answer {
    let query = read_query(query)?;
    Ok(Json(bank.account(&id, query.after).await?).into_response())
}

async fn statement<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Answer {
    let query = read_query(query)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(BankError::invalid("limit", "between 1 and 1000"));
    }
    let lines = bank.statement(&id, limit, query.after).await?;
    Ok(Json(json!({ "account": id, "lines": lines })).into_response())
}

async fn transfer<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    headers: HeaderMap,
    Body(body): Body<TransferBody>,
) -> Answer {
    let key = idempotency_key(&headers)?;
    // Without an id, a request with an Idempotency-Key names its transfer after the key, so a
    // retry of the same request reaches the same transfer (and replays its answer) instead of
    // requesting a second one under a fresh id.
    let id = match (body.id, key) {
        (Some(id), _) => id,
        (None, Some(key)) => transfer_id_for_key(key),
        (None, None) => uuid::Uuid::now_v7().simple().to_string(),
    };
    let written = bank.request_transfer(&id, &body.from, &body.to, body.cents, key).await?;
    let answer = json!({ "id": id, "status": "requested", "written": written });
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// The transfer id a keyed request without an id gets: `k` and 40 hex digits of the key's SHA-256
/// (the key itself may hold characters ids may not).
fn transfer_id_for_key(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut id = String::with_capacity(41);
    id.push('k');
    for byte in &digest[..20] {
        use std::fmt::Write;
        let _ = write!(id, "{byte:02x}");
    }
    id
}

async fn transfer_status<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
) -> Answer {
    Ok(Json(bank.transfer(&id).await?).into_response())
}

async fn totals<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Answer {
    let query = read_query(query)?;
    let (accounts, cents) = bank.totals(query.after).await?;
    // The sum of any set of i64 balances fits an i128, but JSON clients commonly read numbers as
    // i64 or f64: a sum beyond i64 is given exactly, as a string of digits.
    let cents =
        i64::try_from(cents).map_or_else(|_| json!(cents.to_string()), |cents| json!(cents));
    Ok(Json(json!({ "accounts": accounts, "cents": cents })).into_response())
}

async fn projections<S: BankStore>(State(bank): State<Arc<Bank<S>>>) -> Answer {
    Ok(Json(json!({ "projections": bank.projections().await? })).into_response())
}

async fn rebuild<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    Path(name): Path<String>,
) -> Answer {
    let started = Instant::now();
    let handled = bank.rebuild(&name).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Json(
        json!({ "projection": name, "handled": handled, "seconds": seconds, "switched": true }),
    )
    .into_response())
}

/// Forgets an account's owner (see `Bank::forget`): 200 with the audit record, also when the
/// owner was forgotten before (`first_time: false`).
async fn forget<S: BankStore>(
    State(bank): State<Arc<Bank<S>>>,
    Path(id): Path<String>,
    Body(body): Body<ForgetBody>,
) -> Answer {
    let outcome = bank.forget(&id, &body.reason, &body.actor).await?;
    Ok(Json(json!({
        "account": id,
        "subject": outcome.entry.subject.to_string(),
        "first_time": outcome.first_time,
        "forgotten_at": outcome.entry.at,
        "actor": outcome.entry.actor,
        "reason": outcome.entry.reason,
        "snapshots_removed": outcome.snapshots_removed,
    }))
    .into_response())
}

async fn ready<S: BankStore>(State(bank): State<Arc<Bank<S>>>) -> Response {
    match bank.ready().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => {
            error_body(StatusCode::SERVICE_UNAVAILABLE, "not_ready", &reason.to_string())
        }
    }
}

async fn render_metrics<S: BankStore>(State(bank): State<Arc<Bank<S>>>) -> Response {
    let handle = prometheus();
    // Refresh the lag gauges at scrape time, so a view whose runner stopped shows a growing lag
    // instead of the last value it reported.
    if let Err(error) = bank.projections().await {
        tracing::warn!(%error, "bank.metrics: could not refresh projection lag");
    }
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

/// Limits that keep slow or stuck clients from holding the service.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// How long a client may take to send a request's headers. Default 10 s.
    pub header_timeout: Duration,
    /// How long in-flight requests get to finish once shutdown starts; then the remaining
    /// connections are closed, whatever their clients do. Default 10 s.
    pub shutdown_deadline: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), shutdown_deadline: Duration::from_secs(10) }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then stops the bank's background
/// work (with [`ServeLimits::default`]).
pub async fn serve<S: BankStore>(
    bank: Arc<Bank<S>>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(bank, listener, shutdown, ServeLimits::default()).await
}

/// Serves the API: each connection with a header-read timeout; on `shutdown`, stops accepting,
/// lets in-flight requests finish within `limits.shutdown_deadline`, closes what remains, then
/// stops the bank's background work (its runners finish their pass and save).
pub async fn serve_with<S: BankStore>(
    bank: Arc<Bank<S>>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()> {
    serve_app(bank.clone(), router(bank), listener, shutdown, limits).await
}

/// As [`serve_with`], with the application's router `app` (the bank's API, with the operations
/// console nested in it, say).
pub async fn serve_app<S: BankStore>(
    bank: Arc<Bank<S>>,
    app: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        tracing::warn!(%error, "bank.http: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let mut closed = closed.clone();
                connections.spawn(async move {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(limits.header_timeout);
                    let connection = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    let mut connection = std::pin::pin!(connection);
                    let close = async move {
                        let _ = closed.wait_for(|closed| *closed).await;
                    };
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        () = close => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    tracing::info!(
        connections = connections.len(),
        "bank.http: shutting down; draining connections"
    );
    closing.send_replace(true);
    let drained = tokio::time::timeout(limits.shutdown_deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "bank.http: shutdown deadline reached; closing the remaining connections"
        );
        connections.abort_all();
    }
    tokio::time::timeout(Duration::from_secs(10), bank.shutdown()).await.ok();
    Ok(())
}
