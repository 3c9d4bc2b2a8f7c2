//! The event envelope: what a caller appends ([`EventData`]) and what a store returns
//! ([`RecordedEvent`]), with its [`Payload`] and [`EventMetadata`].

mod data;
mod finite;
mod metadata;
mod payload;
mod recorded;
pub mod typed;

pub use data::EventData;
pub use metadata::EventMetadata;
pub use payload::{Payload, PayloadError};
pub use recorded::{RecordedEvent, recorded_now};
