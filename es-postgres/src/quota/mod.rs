//! Per-tenant quotas: the limits operators set (`tenant_limits`), usage counted from the log
//! (`tenant_usage`, migration `20261202000002`), and the ledger each process checks appends
//! against ([`ledger`]).

pub(crate) mod ledger;

use es_core::quota::{Limits, TenantQuotas, TenantUsage, Usage};
use es_core::{StoreError, TenantId};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::PgStore;
use crate::error::read_error;
use crate::row::{bound_i64, stored_u64};
use crate::sql;

fn column(row: &PgRow, name: &str) -> Result<Option<u64>, StoreError> {
    let value: Option<i64> = row.try_get(name).map_err(|e| read_error("tenant usage", e))?;
    value.map(|value| stored_u64(value, format_args!("{name} of a tenant"))).transpose()
}

fn tenant_usage(row: &PgRow) -> Result<TenantUsage, StoreError> {
    let tenant: String = row.try_get("tenant").map_err(|e| read_error("tenant usage", e))?;
    let tenant = TenantId::new(&tenant).map_err(|e| {
        StoreError::corrupt_because(format!("tenant {tenant:?} in tenant_usage"), e)
    })?;
    Ok(TenantUsage {
        tenant,
        usage: Usage {
            events: column(row, "events")?.unwrap_or(0),
            streams: column(row, "streams")?.unwrap_or(0),
            bytes: column(row, "bytes")?.unwrap_or(0),
        },
        limits: Limits {
            events: column(row, "max_events")?,
            streams: column(row, "max_streams")?,
            bytes: column(row, "max_bytes")?,
            events_per_second: column(row, "max_events_per_second")?,
        },
    })
}

impl TenantQuotas for PgStore {
    async fn set_limits(&self, tenant: &TenantId, limits: Limits) -> Result<(), StoreError> {
        let failed = |e| read_error("set limits", e);
        if limits.is_none() {
            sqlx::query(sql::REMOVE_LIMITS)
                .bind(tenant.as_str())
                .execute(self.pool())
                .await
                .map_err(failed)?;
        } else {
            let bound = |limit: Option<u64>| limit.map(bound_i64);
            sqlx::query(sql::SET_LIMITS)
                .bind(tenant.as_str())
                .bind(bound(limits.events))
                .bind(bound(limits.streams))
                .bind(bound(limits.bytes))
                .bind(bound(limits.events_per_second))
                .execute(self.pool())
                .await
                .map_err(failed)?;
        }
        // Counts what the tenant stored (once, here, rather than in its next append) and tells
        // this process's appends at once; other processes see the change at their next refresh.
        self.inner().quotas.refresh(self.inner(), self.pool(), tenant).await
    }

    async fn tenant_usage(&self, tenant: &TenantId) -> Result<TenantUsage, StoreError> {
        let row = sqlx::query(sql::TENANTS_USAGE)
            .bind(Some(tenant.as_str()))
            .fetch_optional(self.pool())
            .await
            .map_err(|e| read_error("tenant usage", e))?;
        match row {
            Some(row) => tenant_usage(&row),
            None => Ok(TenantUsage {
                tenant: tenant.clone(),
                usage: Usage::default(),
                limits: Limits::none(),
            }),
        }
    }

    async fn tenants_usage(&self) -> Result<Vec<TenantUsage>, StoreError> {
        let rows = sqlx::query(sql::TENANTS_USAGE)
            .bind(None::<&str>)
            .fetch_all(self.pool())
            .await
            .map_err(|e| read_error("tenants usage", e))?;
        rows.iter().map(tenant_usage).collect()
    }
}
