//! Personal data that can be forgotten: crypto-shredding of `#[pii]` fields.
//!
//! A field marked `#[pii(subject = "customer")]` (or `#[pii(stream)]`, when the stream names the
//! data subject) has type [`Pii<T>`]. On append, the backend's [`Vault`] seals it: AES-256-GCM
//! with a random nonce, under a data key of its own per (tenant, subject), stored wrapped by a
//! master key ([`MasterKeys`] from configuration, or any [`KeyProvider`], a KMS for example). Reads
//! open it again. [`Vault::forget`] destroys the subject's key, writes an audit record, removes
//! snapshots of the streams holding the subject's data and appends [`SubjectForgotten`] so live
//! read models can scrub their copies; from then on the fields read as [`Pii::Redacted`], in
//! aggregates, projections, rebuilds and exports, while the log stays append-only.
//!
//! ```
//! use es_core::{Event, EventStore, Pii, pii::PersonalData};
//! use es_core::repository::{CommandOptions, Repository};
//! # use es_core::{Aggregate, Apply, commands};
//! # use serde::{Deserialize, Serialize};
//! #[derive(Debug, Serialize, Deserialize, Event)]
//! #[event(name = "customer.registered")]
//! pub struct Registered {
//!     #[pii(stream)] // the stream `customer-…` is the data subject
//!     pub email: Pii<String>,
//! }
//! # #[derive(Debug, Event)] pub enum CustomerEvent { Registered(Registered) }
//! # #[derive(Debug)] pub enum Never {}
//! # #[derive(Default, Aggregate)]
//! # #[aggregate(name = "customer", event = CustomerEvent, error = Never)]
//! # pub struct Customer { email: Option<Pii<String>> }
//! # #[derive(Clone, Hash)] pub struct Register { email: String }
//! # #[commands] impl Customer {
//! #     pub fn register(&self, c: Register) -> Result<Registered, Never> { Ok(Registered { email: Pii::new(c.email) }) }
//! # }
//! # impl Apply<CustomerEvent> for Customer {
//! #     fn apply(&mut self, e: &CustomerEvent) { let CustomerEvent::Registered(r) = e; self.email = Some(r.email.clone()); }
//! # }
//!
//! async fn demo(store: impl EventStore + PersonalData) -> Result<(), Box<dyn std::error::Error>> {
//!     let customers = Repository::<Customer, _>::new(store.clone());
//!     let id = "customer-7".parse()?;
//!     let register = Register { email: "ada@example.com".into() };
//!     customers.execute(&id, register, CommandOptions::default()).await?;
//!     assert_eq!(customers.load(&id).await?.state.email, Some(Pii::new("ada@example.com".into())));
//!
//!     store.forget("customer-7", "ticket 4711", "operator:jane").await?;
//!     assert_eq!(customers.load(&id).await?.state.email, Some(Pii::Redacted));
//!     Ok(())
//! }
//! ```
//!
//! Misuse is a compile error: a `#[pii]` field of another type than `Pii<T>`, and a `Pii<T>`
//! field without `#[pii]` (it would be stored in plain text).

mod envelope;
mod error;
mod forgotten;
mod keys;
mod keystore;
mod read;
mod store;
mod subject;
mod value;
mod vault;

pub use error::PiiError;
pub use forgotten::SubjectForgotten;
pub use keys::{BoxFuture, DataKey, KeyProvider, MasterKeys, WrappedKey};
pub use keystore::{AuditEntry, ForgetOutcome, ForgetRequest, KeyStore, StaleKey, StoredKey};
pub use read::{open_all, open_events, open_replay, seal_request};
pub use store::PersonalData;
pub use subject::{ParseDigestError, SubjectDigest};
pub use value::{Pii, REDACTED_KEY};
pub use vault::{DEFAULT_CACHE_TTL, Vault};
