//! Test support for backends and applications (feature `testing`).
//!
//! - [`aggregate`]: given / when / then scenarios for aggregates, without a store.
//! - [`conformance`]: every case of the event-store contract, as async functions over any
//!   [`MultiTenantStore`](crate::MultiTenantStore), and the [`conformance_tests!`](crate::conformance_tests)
//!   macro that turns them into one `#[test]` each.
//!
//! Failing checks panic with a message that says what the contract required and what the backend
//! did, which is how a test reports failure; this module is test code, not runtime code.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed expectation is how a case reports failure"
)]

pub mod aggregate;
pub mod conformance;
