//! A downstream service: notifications of the bank's public messages, each recorded once in its
//! own PostgreSQL through an inbox (`es::inbox`), whatever NATS redelivers.

use es::inbox::Delivery;
use es::nats::{HandlerError, MessageHandler};
use es::postgres::InboxTransaction;

/// Records each message as a notification (table `notifications`, created by [`Notifications::create_table`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Notifications;

impl Notifications {
    /// Creates the table if it is missing (in the schema on the pool's `search_path`).
    pub async fn create_table(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS notifications (\
             id bigserial PRIMARY KEY, message_id text NOT NULL, subject text NOT NULL, \
             body jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())",
        )
        .execute(pool)
        .await
        .map(drop)
    }
}

impl MessageHandler<InboxTransaction> for Notifications {
    async fn handle(
        &mut self,
        tx: &mut InboxTransaction,
        message: &Delivery,
    ) -> Result<(), HandlerError> {
        let body = std::str::from_utf8(&message.payload)
            .map_err(|error| HandlerError::with_source("the body is not UTF-8", error))?;
        let body: serde_json::Value = serde_json::from_str(body)
            .map_err(|error| HandlerError::with_source("the body is not JSON", error))?;
        // No unique key on message_id: the inbox is what keeps a redelivery from a second row
        // (and the check in the README finds any).
        sqlx::query("INSERT INTO notifications (message_id, subject, body) VALUES ($1, $2, $3)")
            .bind(&message.message_id)
            .bind(message.subject.as_str())
            .bind(&body)
            .execute(&mut **tx)
            .await
            .map_err(|error| HandlerError::with_source("the insert failed", error))?;
        tracing::info!(subject = %message.subject, message = %message.message_id, %body, "notification");
        Ok(())
    }
}
