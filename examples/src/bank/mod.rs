//! A bank built on the framework: accounts (an aggregate), transfers between them (a process
//! manager with compensation), balances and statements (projections), served over HTTP.
//!
//! ```text
//! HTTP ─► Bank ─► Repository<Account> ─┐
//!              └► Repository<Transfer> ─┤► EventStore (es-memory | es-postgres)
//!                                       │
//!   TransferProcess ◄─ transfer.requested (runner, checkpoint, lock) ─┘
//!   Balances, Statements ◄─ account events (runners, in-memory models)
//!
//! With NATS configured, account and transfer outcomes are enqueued as public messages with
//! their events (`publish`) and a relay delivers them to JetStream; `bank-notifications`
//! consumes them.
//! ```

pub mod account;
pub mod console;
pub mod demo;
pub mod error;
pub mod http;
pub mod notifications;
pub mod process;
pub mod publish;
pub mod read_models;
pub mod served;
pub mod service;
pub mod stats;
pub mod store;
pub mod transfer;

pub use error::BankError;
pub use service::{Bank, TransferView, Written};
pub use store::BankStore;
