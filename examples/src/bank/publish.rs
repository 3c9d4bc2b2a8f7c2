//! What the bank tells other services: its public messages (subjects `{prefix}.account.*` and
//! `{prefix}.transfer.*`), mapped from its events by a [`Publisher`] and enqueued with them.
//!
//! The messages are a contract of their own: account ids and amounts, never the owner's name
//! (personal data stays in the bank), and no internal step of a transfer (`requested`,
//! `debited`): only outcomes.

use bytes::Bytes;
use es::StreamId;
use es::Subject;
use es::outbox::{Headers, Publisher};
use serde_json::json;

use super::account::AccountEvent;
use super::transfer::TransferEvent;

/// Maps the bank's events to its public messages.
#[derive(Clone, Debug)]
pub struct PublicEvents {
    prefix: String,
}

impl PublicEvents {
    /// Messages under `prefix` (`bank`: `bank.account.deposited`, …). The prefix must be a valid
    /// subject token (ASCII letters, digits, `-`, `_`).
    pub fn new(prefix: impl Into<String>) -> Result<Self, es::IdError> {
        let prefix = prefix.into();
        Subject::new(format!("{prefix}.x"))?;
        Ok(Self { prefix })
    }

    /// The subjects a stream must capture: `{prefix}.>`.
    pub fn subjects(&self) -> String {
        format!("{}.>", self.prefix)
    }

    fn message(&self, name: &str, body: &serde_json::Value) -> Option<(Subject, Bytes, Headers)> {
        let subject = Subject::new(format!("{}.{name}", self.prefix)).ok()?;
        let headers = Headers::new().with("Content-Type", "application/json").ok()?;
        Some((subject, Bytes::from(body.to_string()), headers))
    }
}

/// The id part of `account-42`.
fn id(stream: &StreamId) -> &str {
    stream.as_str().split_once('-').map_or(stream.as_str(), |(_, id)| id)
}

impl Publisher<AccountEvent> for PublicEvents {
    fn message(
        &self,
        stream: &StreamId,
        event: &AccountEvent,
    ) -> Option<(Subject, Bytes, Headers)> {
        let account = id(stream);
        match event {
            AccountEvent::Opened(_) => self.message("account.opened", &json!({ "account": account })),
            AccountEvent::Deposited(deposited) => self.message(
                "account.deposited",
                &json!({ "account": account, "cents": deposited.cents, "transfer": deposited.transfer }),
            ),
            AccountEvent::Withdrawn(withdrawn) => self.message(
                "account.withdrawn",
                &json!({ "account": account, "cents": withdrawn.cents, "transfer": withdrawn.transfer }),
            ),
            AccountEvent::Closed(_) => self.message("account.closed", &json!({ "account": account })),
        }
    }
}

impl Publisher<TransferEvent> for PublicEvents {
    fn message(
        &self,
        stream: &StreamId,
        event: &TransferEvent,
    ) -> Option<(Subject, Bytes, Headers)> {
        let transfer = id(stream);
        match event {
            TransferEvent::Completed(_) => {
                self.message("transfer.completed", &json!({ "transfer": transfer }))
            }
            TransferEvent::Failed(failed) => self.message(
                "transfer.failed",
                &json!({ "transfer": transfer, "reason": failed.reason }),
            ),
            TransferEvent::Compensated(compensated) => self.message(
                "transfer.compensated",
                &json!({ "transfer": transfer, "reason": compensated.reason }),
            ),
            TransferEvent::Requested(_) | TransferEvent::Debited(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::account::{Deposited, Opened};

    #[test]
    fn no_personal_data_and_only_outcomes() {
        let public = PublicEvents::new("bank").unwrap();
        let stream = StreamId::new("account-42").unwrap();
        let opened = AccountEvent::Opened(Opened {
            owner: es::Pii::new("Ada Lovelace".into()),
            email: es::Pii::new(Some("ada@example.com".into())),
        });
        let (subject, body, _) =
            Publisher::<AccountEvent>::message(&public, &stream, &opened).unwrap();
        assert_eq!(subject.as_str(), "bank.account.opened");
        assert_eq!(&body[..], br#"{"account":"42"}"#, "the owner's name is not published");
        let deposited = AccountEvent::Deposited(Deposited { cents: 500, transfer: None });
        let (_, body, _) =
            Publisher::<AccountEvent>::message(&public, &stream, &deposited).unwrap();
        assert_eq!(&body[..], br#"{"account":"42","cents":500,"transfer":null}"#);
        assert!(PublicEvents::new("bad prefix").is_err());
    }
}
