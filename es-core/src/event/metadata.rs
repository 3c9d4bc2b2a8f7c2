//! Correlation, causation, actor and custom key-values carried beside each event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an event carries beside its payload: where it came from and why.
///
/// The correlation id ties together everything one request caused; the causation id names the
/// message (command or event) that caused this event. Both flow from a command into its events.
///
/// ```
/// use es_core::EventMetadata;
/// use uuid::Uuid;
/// let request = Uuid::now_v7();
/// let meta = EventMetadata::default()
///     .with_correlation_id(request)
///     .with_actor("user:7")
///     .with_custom("ip", "127.0.0.1");
/// assert_eq!(meta.actor.as_deref(), Some("user:7"));
/// assert_eq!(meta.custom["ip"], "127.0.0.1");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventMetadata {
    /// Shared by every message that one original request caused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The id of the message that directly caused this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Who caused it (a user, a service, a job), in the application's own notation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Further key-values of the application's choosing.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
}

impl EventMetadata {
    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the actor.
    #[must_use]
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Adds a custom key-value.
    #[must_use]
    pub fn with_custom(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.custom.insert(key.into(), value.into());
        self
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none()
            && self.causation_id.is_none()
            && self.actor.is_none()
            && self.custom.is_empty()
    }
}
