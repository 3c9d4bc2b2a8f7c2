//! The inbox of a consumer (`es_core::inbox::Inbox`): the message recorded first thing in the
//! effect's transaction (`INSERT … ON CONFLICT DO NOTHING`), so a redelivery finds it, and a
//! concurrent delivery of the same message waits on the first one's row until it ends.

use es_core::inbox::{Delivery, Inbox, ParkedDelivery};
use es_core::outbox::Headers;
use es_core::{ProjectionName, StoreError};

use crate::error::read_error;
use crate::row::{bound_i64, corrupt_in, stored_u64};
use crate::sql;
use crate::store::PgStore;

/// A message's effect in progress: the caller's writes go through it (`&mut *tx` is a
/// `PgConnection`), and [`Inbox::commit`] commits them with the record of the message.
pub type InboxTransaction = sqlx::Transaction<'static, sqlx::Postgres>;

#[derive(sqlx::FromRow)]
struct ParkedRow {
    consumer: String,
    message_id: String,
    subject: String,
    payload: Vec<u8>,
    headers: String,
    deliveries: i64,
    error: String,
    parked_at: chrono::DateTime<chrono::Utc>,
}

impl Inbox for PgStore {
    type Transaction = InboxTransaction;

    async fn begin(
        &self,
        consumer: &ProjectionName,
        message_id: &str,
    ) -> Result<Option<InboxTransaction>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(|error| read_error("inbox begin", error))?;
        let recorded = sqlx::query(sql::INBOX_RECORD)
            .bind(consumer.as_str())
            .bind(message_id.replace('\0', "\u{fffd}"))
            .execute(&mut *tx)
            .await
            .map_err(|error| StoreError::backend("inbox begin", true, error))?;
        if recorded.rows_affected() == 0 {
            // Applied before: nothing to do (the transaction rolls back as it drops).
            return Ok(None);
        }
        Ok(Some(tx))
    }

    async fn commit(&self, transaction: InboxTransaction) -> Result<(), StoreError> {
        // A lost connection here leaves the outcome unknown: the redelivery finds out (the
        // record is there or not), so the caller never guesses.
        transaction
            .commit()
            .await
            .map_err(|error| StoreError::backend("inbox commit", false, error))
    }

    async fn park(&self, parked: ParkedDelivery) -> Result<(), StoreError> {
        let delivery = &parked.delivery;
        let pairs: Vec<(&str, &str)> = delivery.headers.iter().collect();
        let headers = serde_json::to_string(&pairs)
            .map_err(|error| StoreError::backend("inbox park", false, error))?;
        sqlx::query(sql::INBOX_PARK)
            .bind(parked.consumer.as_str())
            .bind(delivery.message_id.replace('\0', "\u{fffd}"))
            .bind(delivery.subject.replace('\0', "\u{fffd}"))
            .bind(&delivery.payload[..])
            .bind(headers)
            .bind(bound_i64(delivery.deliveries))
            .bind(parked.error.replace('\0', "\u{fffd}"))
            .bind(parked.parked_at)
            .execute(self.pool())
            .await
            .map_err(|error| StoreError::backend("inbox park", true, error))?;
        Ok(())
    }

    async fn parked(&self, consumer: &ProjectionName) -> Result<Vec<ParkedDelivery>, StoreError> {
        let rows: Vec<ParkedRow> = sqlx::query_as(sql::INBOX_PARKED)
            .bind(consumer.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|error| read_error("inbox parked", error))?;
        rows.into_iter()
            .map(|row| {
                let what = || format!("parked message {} of {}", row.message_id, row.consumer);
                let pairs: Vec<(String, String)> =
                    serde_json::from_str(&row.headers).map_err(corrupt_in(what()))?;
                Ok(ParkedDelivery {
                    consumer: ProjectionName::new(&row.consumer).map_err(corrupt_in(what()))?,
                    delivery: Delivery {
                        message_id: row.message_id.clone(),
                        subject: row.subject,
                        payload: row.payload.into(),
                        headers: Headers::from_stored(pairs),
                        deliveries: stored_u64(row.deliveries, what())?,
                    },
                    error: row.error,
                    parked_at: row.parked_at,
                })
            })
            .collect()
    }
}
