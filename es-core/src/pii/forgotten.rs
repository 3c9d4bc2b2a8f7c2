//! The event a forgetting appends, so that read models scrub a subject without a rebuild.

use serde::{Deserialize, Serialize};

use crate::event::typed::{DecodeError, Event, EventTypeInfo, EventVariant, KnownTypes};
use crate::{Payload, PayloadError, StreamId};

/// Appended (in the forgetting's own transaction) to the stream `es.subject-{digest}` when a data
/// subject is forgotten. Read models handle it to remove what they keep of the subject: the
/// fields sealed in the log already read as [`Pii::Redacted`](super::Pii::Redacted), but a live
/// read model holds copies made before.
///
/// ```
/// use es_core::{Projection, ProjectionError, projection, pii::SubjectForgotten};
/// use std::collections::HashMap;
///
/// #[derive(Default)]
/// struct Owners { by_account: HashMap<String, String> }
///
/// #[projection(name = "owners")]
/// impl Owners {
///     async fn on_forgotten(&mut self, event: &SubjectForgotten) -> Result<(), ProjectionError> {
///         self.by_account.remove(&event.subject);
///         Ok(())
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectForgotten {
    /// The subject's id, as the events named it.
    pub subject: String,
}

impl SubjectForgotten {
    /// The stored type name.
    pub const NAME: &'static str = "es.subject_forgotten";

    /// The stream the event of a subject with this digest goes to.
    pub fn stream(digest: super::SubjectDigest) -> StreamId {
        StreamId::new(format!("es.subject-{digest}")).unwrap_or_else(|_| unreachable!("a valid id"))
    }
}

impl EventVariant for SubjectForgotten {
    const INFO: EventTypeInfo = EventTypeInfo { name: Self::NAME, version: 1, pii: &[] };
}

impl Event for SubjectForgotten {
    const TYPES: &'static [&'static EventTypeInfo] = &[&<Self as EventVariant>::INFO];

    fn type_info(&self) -> &'static EventTypeInfo {
        Self::TYPES[0]
    }

    fn to_payload(&self) -> Result<Payload, PayloadError> {
        Payload::from_value(self)
    }

    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: &Payload,
    ) -> Result<Self, DecodeError> {
        crate::__private::decode_variant(event_type, schema_version, payload, &[]).map_err(
            |error| match error {
                DecodeError::UnknownType { event_type, .. } => {
                    DecodeError::UnknownType { event_type, known: KnownTypes(Self::TYPES) }
                }
                other => other,
            },
        )
    }
}
