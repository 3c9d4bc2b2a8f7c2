//! Snapshots of the pretty-printed expansion of representative inputs: a change to generated code
//! shows up as a reviewed diff (`cargo insta review`, or `INSTA_UPDATE=always` then `git diff`).

use proc_macro2::TokenStream;
use quote::quote;

use crate::aggregate::DeriveAggregate;
use crate::commands::Commands;
use crate::event::DeriveEvent;
use crate::expand::{AttributeInput, expand_with};
use crate::projection::Projection;

fn pretty(tokens: TokenStream) -> String {
    let text = tokens.to_string();
    syn::parse2::<syn::File>(tokens).map_or(text, |file| prettyplease::unparse(&file))
}

fn derive_event(input: TokenStream) -> String {
    pretty(expand_with::<DeriveEvent>(&syn::parse2(input).unwrap()))
}

#[test]
fn event_struct_with_upcasters_and_pii() {
    insta::assert_snapshot!(derive_event(quote! {
        #[event(name = "account.opened", version = 3, upcast(from = 1, with = split_name), upcast(from = 2, type = OpenedV2))]
        pub struct AccountOpened {
            owner: String,
            #[pii(subject = "owner")]
            email: String,
        }
    }));
}

#[test]
fn event_enum() {
    insta::assert_snapshot!(derive_event(quote! {
        pub enum AccountEvent {
            Opened(AccountOpened),
            Deposited(Deposited),
        }
    }));
}

#[test]
fn event_with_errors_emits_errors_and_a_stub() {
    insta::assert_snapshot!(derive_event(quote! {
        #[event(version = 0, nmae = "x")]
        pub struct Deposited { amount: i64 }
    }));
}

#[test]
fn aggregate() {
    let input = syn::parse2(quote! {
        #[aggregate(name = "account", event = AccountEvent, error = AccountError, snapshot(every = 200, version = 1))]
        pub struct Account { balance: i64 }
    })
    .unwrap();
    insta::assert_snapshot!(pretty(expand_with::<DeriveAggregate>(&input)));
}

#[test]
fn commands() {
    let item = syn::parse2(quote! {
        impl Account {
            pub fn open(&self, command: Open) -> Result<AccountOpened, AccountError> { todo!() }
            pub fn withdraw(&self, command: Withdraw) -> Result<Vec<AccountEvent>, AccountError> { todo!() }
        }
    })
    .unwrap();
    insta::assert_snapshot!(pretty(expand_with::<Commands>(&AttributeInput {
        args: TokenStream::new(),
        item
    })));
}

#[test]
fn projection() {
    let item = syn::parse2(quote! {
        impl Balances {
            async fn on_deposited(&mut self, event: &Deposited, meta: &RecordedEvent) -> Result<(), ProjectionError> { todo!() }
            async fn on_withdrawn(&mut self, event: &Withdrawn) -> Result<(), ProjectionError> { todo!() }
        }
    })
    .unwrap();
    insta::assert_snapshot!(pretty(expand_with::<Projection>(&AttributeInput {
        args: quote!(name = "balances"),
        item
    })));
}

/// No handler takes the envelope: the projection reads payloads only (`Reads::Payload`) and
/// dispatches them the same way.
#[test]
fn projection_of_payloads_only() {
    let item = syn::parse2(quote! {
        impl Totals {
            async fn on_deposited(&mut self, event: &Deposited) -> Result<(), ProjectionError> { todo!() }
        }
    })
    .unwrap();
    insta::assert_snapshot!(pretty(expand_with::<Projection>(&AttributeInput {
        args: quote!(name = "totals"),
        item
    })));
}
