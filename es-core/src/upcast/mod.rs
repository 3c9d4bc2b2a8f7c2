//! Upcasting: reading events stored at an older schema version as the current type.
//!
//! An upcaster turns the JSON of version k into the JSON of version k+1. The derive chains them:
//! a stored event of version k runs through k → k+1 → … → current before it is deserialized, on
//! every read path (aggregate loads, projections, replays).
//!
//! ```
//! use es_core::upcast::UpcastError;
//! use serde_json::{Value, json};
//!
//! /// Version 1 stored a single `name`; version 2 splits it.
//! fn split_name(mut v1: Value) -> Result<Value, UpcastError> {
//!     let name = v1["name"].as_str().ok_or_else(|| UpcastError::new("`name` is missing"))?.to_owned();
//!     let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
//!     v1["first"] = json!(first);
//!     v1["last"] = json!(last);
//!     Ok(v1)
//! }
//! assert_eq!(split_name(json!({ "name": "Ada Lovelace" }))?["last"], "Lovelace");
//! # Ok::<(), UpcastError>(())
//! ```

use std::error::Error as StdError;
use std::fmt;

use serde_json::Value;

/// An upcaster: the JSON of one version in, the JSON of the next out.
pub type Upcaster = fn(Value) -> Result<Value, UpcastError>;

/// An upcaster failed; the message says why.
#[derive(Debug)]
pub struct UpcastError {
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl UpcastError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), source: None }
    }

    /// An error caused by another one.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self { message: message.into(), source: Some(source.into()) }
    }
}

impl fmt::Display for UpcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for UpcastError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn StdError + 'static))
    }
}

impl From<serde_json::Error> for UpcastError {
    fn from(error: serde_json::Error) -> Self {
        Self::with_source("the JSON does not fit the upcaster's types", error)
    }
}
