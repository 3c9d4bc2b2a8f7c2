//! # es-macros
//!
//! The proc-macro crate of the framework. It will hold `#[derive(Event)]`, `#[derive(Aggregate)]`
//! and `#[projection]` (issue: "es-macros: derives that generate event versioning and upcasters,
//! command dispatch and projection wiring"); `es-core` will re-export them, so applications never
//! depend on this crate directly.
//!
//! It exports no macro yet: the store contract they generate code against comes first.
