//! # es-macros
//!
//! The derive macros of the framework, re-exported by `es-core` (feature `derive`, on by default);
//! applications use them as `es_core::Event` and so on and never depend on this crate directly.
//! Generated code names only `::es_core::…` (or the path given with `crate = "…"`).
//!
//! Every macro runs the same layers (`expand::expand_with`): its attributes as written
//! (`attrs`), a model whose required parts are present (`model`), the rules beyond syntax
//! (`check`), the code (`emit`). Every mistake becomes a compile error on the offending token, all
//! of them at once, and a fallback impl is emitted beside them so that one mistake gives one
//! error. Attribute names are symbols (`internals::symbol`); naming rules come from `es-names`,
//! the crate es-core checks ids with.

#![allow(
    clippy::too_many_lines,
    reason = "emit functions are mostly `quote!` templates; split up they are harder to read"
)]

mod aggregate;
mod commands;
mod event;
mod expand;
mod internals;
mod projection;
#[cfg(test)]
mod snapshot_tests;

use proc_macro::TokenStream;

use expand::{AttributeInput, expand_with};

/// Implements `es_core::Event` for an event struct or an enum of event structs.
///
/// On a struct: `#[event(name = "account.opened", version = 2, upcast(from = 1, with = path))]`
/// `name` is required: it is what each stored event carries, so it must not follow the Rust type's
/// name (renaming the type would orphan the stored events); a missing one is a compile error that
/// suggests one. `version` defaults to 1, `upcast` to none. Upcasters:
/// `upcast(from = k, with = fn_path)` with `fn(serde_json::Value) -> Result<Value, UpcastError>`,
/// or `upcast(from = k, type = OldType)` where the old type converts `Into` the next version's type.
/// Fields may carry `#[pii(subject = "field")]`.
///
/// On an enum: every variant wraps one event struct, `Opened(AccountOpened)`.
#[proc_macro_derive(Event, attributes(event, pii))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand_with::<event::DeriveEvent>(&input).into()
}

/// Implements `es_core::Aggregate` from
/// `#[aggregate(name = "account", event = AccountEvent, error = AccountError, snapshot(every = 200, version = 1))]`.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand_with::<aggregate::DeriveAggregate>(&input).into()
}

/// On an `impl` block of command methods (`fn open(&self, command: Open) -> Result<…, …>`):
/// generates the command enum (`{Type}Command`), its `From` impls and the dispatch.
#[proc_macro_attribute]
pub fn commands(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemImpl);
    expand_with::<commands::Commands>(&AttributeInput { args: args.into(), item }).into()
}

/// On an `impl` block of async event handlers (`async fn on_deposited(&mut self, event: &Deposited)`):
/// implements `es_core::Projection` with the handled types, the dispatch and the checkpoint name.
#[proc_macro_attribute]
pub fn projection(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = syn::parse_macro_input!(item as syn::ItemImpl);
    expand_with::<projection::Projection>(&AttributeInput { args: args.into(), item }).into()
}
