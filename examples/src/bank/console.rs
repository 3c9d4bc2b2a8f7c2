//! The operations console, mounted by the bank at `/console`: its two views and the transfer
//! process as projections (rebuild and replay for the views), readiness on the health page.

use std::sync::Arc;

use axum::Router;
use es::console::{Console, ConsoleConfig, HealthCheck, ProjectionControl, ProjectionStatus};
use es::quota::TenantQuotas;
use es::{Position, ProjectionName};

use crate::bank::service::Bank;
use crate::bank::store::BankStore;

/// Health checks only the backend can make (PostgreSQL's read horizon), added to the bank's own.
pub type BackendHealth =
    Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, Vec<HealthCheck>> + Send + Sync>;

/// The console's routes for `bank`, to nest under `/console`, with every tenant's usage against
/// its quotas from `quotas` (the backend the bank's store comes from) and the backend's own
/// health checks; its live tails end when `shutdown` completes.
pub fn router<S, Q>(
    bank: &Arc<Bank<S>>,
    config: ConsoleConfig,
    quotas: Q,
    backend_health: Option<BackendHealth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Router
where
    S: BankStore,
    Q: TenantQuotas + Clone + 'static,
{
    let mut console = Console::new(bank.store().clone(), config.title("bank console"));
    for view in ["balances", "statements"] {
        let Ok(name) = ProjectionName::new(view) else { continue };
        let (status, rebuild, replay) = (bank.clone(), bank.clone(), bank.clone());
        console = console.projection(
            ProjectionControl::new(name)
                .status(move || {
                    let status = view_status(&status, view);
                    async move { status }
                })
                .rebuild(move || {
                    let bank = rebuild.clone();
                    async move {
                        bank.rebuild(view)
                            .await
                            .map(|handled| format!("Rebuilt {view}: {handled} events handled."))
                            .map_err(|error| error.to_string())
                    }
                })
                .replay_parked(move |position: Option<Position>| {
                    let bank = replay.clone();
                    async move {
                        bank.replay_parked(view, position)
                            .await
                            .map(|(replayed, remaining)| {
                                format!("Replayed {replayed}; {remaining} still parked.")
                            })
                            .map_err(|error| error.to_string())
                    }
                }),
        );
    }
    let process = <crate::bank::process::TransferProcess<S> as es::Projection>::projection_name();
    console = console.projection(ProjectionControl::new(process));
    let ready = bank.clone();
    console
        .tenants(move || {
            let quotas = quotas.clone();
            async move { quotas.tenants_usage().await }
        })
        .live_until(shutdown)
        .health(move || {
            let bank = ready.clone();
            let backend_health = backend_health.clone();
            async move {
                let mut checks = vec![match bank.ready().await {
                    Ok(()) => HealthCheck::new("service readiness", "ready", true),
                    Err(error) => HealthCheck::new("service readiness", error.to_string(), false),
                }];
                checks.extend(outbox_checks(bank.store()).await);
                if let Some(backend_health) = backend_health {
                    checks.extend(backend_health().await);
                }
                checks
            }
        })
        .router()
}

/// A view's status from the bank's own state (one view, no store read).
fn view_status<S: BankStore>(bank: &Bank<S>, view: &str) -> ProjectionStatus {
    match bank.view_state(view) {
        Some((state, checkpoint, last_error)) => {
            ProjectionStatus::new(state, Some(checkpoint)).last_error(last_error)
        }
        None => ProjectionStatus::new("unknown", None),
    }
}

/// The outbox's depth, the age of its oldest waiting message, and its parked messages.
async fn outbox_checks<S: BankStore>(store: &S) -> Vec<HealthCheck> {
    match store.outbox_stats().await {
        Ok(stats) => {
            let age = stats.oldest_pending.map(|at| (chrono::Utc::now() - at).num_seconds().max(0));
            vec![
                HealthCheck::new(
                    "outbox depth",
                    format!(
                        "{} waiting, {} delivered not yet pruned",
                        stats.pending, stats.delivered
                    ),
                    true,
                ),
                HealthCheck::new(
                    "outbox oldest waiting message",
                    age.map_or_else(|| "none".to_owned(), |age| format!("{age} s old")),
                    age.is_none_or(|age| age < 60),
                ),
                HealthCheck::new(
                    "outbox parked messages",
                    stats.parked.to_string(),
                    stats.parked == 0,
                ),
            ]
        }
        Err(error) => vec![HealthCheck::new("outbox", format!("unreadable: {error}"), false)],
    }
}
