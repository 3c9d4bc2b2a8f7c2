//! How the command pipeline publishes: a [`Publisher`] maps each decided event to its public
//! message, or to none.

use bytes::Bytes;

use super::Headers;
use crate::{StreamId, Subject};

/// Maps an aggregate's events to integration messages, for
/// [`Repository::with_publisher`](crate::repository::Repository::with_publisher): the messages are
/// enqueued in the same append as the events.
///
/// The message is the public contract with other services: keep it stable when the domain event
/// changes (its own subject versioning, its own payload), and map only what others need.
///
/// ```
/// use es_core::outbox::{Headers, Publisher};
/// use es_core::{StreamId, Subject};
///
/// enum AccountEvent { Opened { owner: String }, Noted }
///
/// struct PublicAccountEvents;
///
/// impl Publisher<AccountEvent> for PublicAccountEvents {
///     fn message(&self, stream: &StreamId, event: &AccountEvent) -> Option<(Subject, bytes::Bytes, Headers)> {
///         match event {
///             AccountEvent::Opened { .. } => Some((
///                 Subject::new("bank.account.opened").ok()?,
///                 serde_json::to_vec(&serde_json::json!({ "account": stream.as_str() })).ok()?.into(),
///                 Headers::new(),
///             )),
///             AccountEvent::Noted => None,
///         }
///     }
/// }
/// ```
pub trait Publisher<E>: Send + Sync + 'static {
    /// The message publishing `event` of `stream`: its subject, payload and headers; `None` for
    /// an event that is not published.
    fn message(&self, stream: &StreamId, event: &E) -> Option<(Subject, Bytes, Headers)>;
}

/// Publishes nothing: the repository's default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPublisher;

impl<E> Publisher<E> for NoPublisher {
    fn message(&self, _: &StreamId, _: &E) -> Option<(Subject, Bytes, Headers)> {
        None
    }
}
