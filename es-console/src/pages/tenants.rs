//! Tenants: what each uses against its quotas.

use axum::Extension;
use axum::extract::State;
use axum::response::Html;
use maud::{Markup, html};

use crate::auth::Access;
use crate::error::ConsoleError;
use crate::render;
use crate::render::{Section, count};
use crate::{ConsoleStore, Shared};

fn against(used: u64, limit: Option<u64>) -> Markup {
    html! {
        (count(used))
        @if let Some(limit) = limit {
            " / " (count(limit))
            @if used >= limit { " " strong class="error-text" { "at its limit" } }
        }
    }
}

/// The tenants page.
pub(crate) async fn page<S: ConsoleStore>(
    State(state): Shared<S>,
    Extension(access): Extension<Access>,
) -> Result<Html<String>, ConsoleError> {
    let Some(usage) = &state.usage else {
        let body = html! { p class="empty" { "The application did not give the console its tenants' usage." } };
        return Ok(render::page(&state.config.title, "Tenants", &access, Section::Tenants, &body));
    };
    let tenants = usage().await?;
    let body = html! {
        table id="tenants" {
            thead { tr { th { "Tenant" } th class="num" { "Events" } th class="num" { "Streams" } th class="num" { "Payload bytes" } th class="num" { "Events per second" } } }
            tbody {
                @for tenant in &tenants {
                    tr {
                        td { (tenant.tenant) }
                        td class="num" { (against(tenant.usage.events, tenant.limits.events)) }
                        td class="num" { (against(tenant.usage.streams, tenant.limits.streams)) }
                        td class="num" { (against(tenant.usage.bytes, tenant.limits.bytes)) }
                        td class="num" { @if let Some(rate) = tenant.limits.events_per_second { "≤ " (count(rate)) } @else { "no limit" } }
                    }
                }
            }
        }
    };
    Ok(render::page(&state.config.title, "Tenants", &access, Section::Tenants, &body))
}
