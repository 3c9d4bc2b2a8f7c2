//! The code of an aggregate: `Aggregate`, and its fallback stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;

use super::attrs::{Attrs, Snapshot};
use super::model::Model;
use crate::expand::in_const;
use crate::internals::attr::krate;

pub(crate) fn model(model: &Model) -> TokenStream {
    let Model { ident, name, event, error, command, krate, .. } = model;
    let snapshot = match model.snapshot {
        Some(Snapshot { every: Some(every), version }) => {
            quote!(#krate::SnapshotPolicy { every: ::core::option::Option::Some(#every), version: #version })
        }
        Some(Snapshot { every: None, version }) => {
            quote!(#krate::SnapshotPolicy { every: ::core::option::Option::None, version: #version })
        }
        None => quote!(#krate::SnapshotPolicy::NEVER),
    };
    let apply = quote_spanned! {ident.span()=>
        <Self as #krate::Apply<#event>>::apply(self, event)
    };
    let handle = quote_spanned! {ident.span()=>
        <Self as #krate::HandleCommand<#command>>::handle_command(self, command)
    };
    in_const(&quote! {
        #[automatically_derived]
        impl #krate::Aggregate for #ident {
            const NAME: &'static str = #name;
            const SNAPSHOT: #krate::SnapshotPolicy = #snapshot;
            type Event = #event;
            type Command = #command;
            type Error = #error;

            fn evolve(&mut self, event: &Self::Event) {
                #apply
            }

            fn handle(
                &self,
                command: Self::Command,
            ) -> ::core::result::Result<::std::vec::Vec<Self::Event>, Self::Error> {
                #handle
            }
        }
    })
}

/// Beside errors: an `Aggregate` with the event and error types that were given, so the
/// `#[commands]` block and other uses do not add errors of their own.
pub(crate) fn fallback(input: &DeriveInput, attrs: &Attrs) -> TokenStream {
    if !input.generics.params.is_empty() || !matches!(input.data, syn::Data::Struct(_)) {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let krate = krate(attrs.krate.clone());
    let event =
        attrs.event.as_ref().map_or_else(|| quote!(#krate::__private::NoEvent), |ty| quote!(#ty));
    let error = attrs.error.as_ref().map_or_else(|| quote!(()), |ty| quote!(#ty));
    in_const(&quote! {
        impl #krate::Aggregate for #ident {
            const NAME: &'static str = "";
            const SNAPSHOT: #krate::SnapshotPolicy = #krate::SnapshotPolicy::NEVER;
            type Event = #event;
            type Command = ();
            type Error = #error;
            fn evolve(&mut self, _: &Self::Event) { ::core::unreachable!() }
            fn handle(&self, _: ()) -> ::core::result::Result<::std::vec::Vec<Self::Event>, Self::Error> { ::core::unreachable!() }
        }
    })
}
