//! The code of a projection: `Projection` or `TransactionalProjection<C>`, and its fallback stub.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Generics, ImplItem, ItemImpl, Path, Type, parse_quote};

use super::attrs::Attrs;
use super::model::{Handler, Model, transaction_of};
use crate::expand::in_const;
use crate::internals::attr::krate;

pub(crate) fn model(model: &Model) -> TokenStream {
    let Model { self_ty, name, krate, .. } = model;
    let generics = generics_of(&model.generics, model.transaction.as_ref(), krate);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let events: Vec<_> = model.handlers.iter().map(|handler| &handler.event).collect();
    let is_event_struct = events.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: fn() = || {
                fn handler_argument_must_be_an_event_struct<T: #krate::EventVariant>() {}
                handler_argument_must_be_an_event_struct::<#ty>();
            };
        }
    });
    // Handlers see the batch's connection as the type they take (see `Through`).
    let tx = model.transaction.as_ref().map(|connection| {
        quote!(<__EsConnection as #krate::projection::Through<#connection>>::through(tx),)
    });
    let dispatch = model.handlers.iter().map(|Handler { method, event, with_meta }| {
        let call = if *with_meta {
            quote!(Self::#method(self, #tx &decoded, event).await)
        } else {
            quote!(Self::#method(self, #tx &decoded).await)
        };
        quote! {
            if event.event_type.as_str() == <#event as #krate::EventVariant>::INFO.name {
                let decoded = <#event as #krate::Event>::from_stored(
                    event.event_type.as_str(),
                    event.schema_version,
                    &event.payload,
                )?;
                return #call;
            }
        }
    });
    let dispatch: Vec<_> = dispatch.collect();
    // No handler takes the envelope (and none a transaction, whose runner reads envelopes): the
    // runner may read payloads only, and hands them to the same dispatch.
    let payload_only = (model.transaction.is_none()
        && model.handlers.iter().all(|handler| !handler.with_meta))
    .then(|| {
        quote! {
            const READS: #krate::projection::Reads = #krate::projection::Reads::Payload;

            async fn handle_payload(
                &mut self,
                event: &#krate::LogEvent,
            ) -> ::core::result::Result<(), #krate::ProjectionError> {
                #(#dispatch)*
                ::core::result::Result::Ok(())
            }
        }
    });
    let (trait_path, tx_param) = signature(model.transaction.as_ref(), krate);
    in_const(&quote! {
        #(#is_event_struct)*

        #[automatically_derived]
        impl #impl_generics #trait_path for #self_ty #where_clause {
            const NAME: &'static str = #name;
            const EVENT_TYPES: &'static [&'static #krate::EventTypeInfo] = &[#(&<#events as #krate::EventVariant>::INFO),*];

            async fn handle(
                &mut self,
                #tx_param
                event: &#krate::RecordedEvent,
            ) -> ::core::result::Result<(), #krate::ProjectionError> {
                #(#dispatch)*
                // A type this projection does not handle (the store's filter normally keeps
                // those away): nothing to do.
                ::core::result::Result::Ok(())
            }

            #payload_only
        }

        // Two handled structs sharing a stored name would make the dispatch ambiguous.
        const _: () = #krate::__private::assert_unique_event_names(&[#(&<#events as #krate::EventVariant>::INFO),*]);
    })
}

/// The trait a projection implements and the transaction parameter of its `handle`: handlers
/// that take the transaction make the projection transactional over every connection that is
/// `Through` their connection type (the type itself, or a backend's view of it).
fn signature(transaction: Option<&Type>, krate: &Path) -> (TokenStream, TokenStream) {
    match transaction {
        Some(_) => (
            quote!(#krate::projection::TransactionalProjection<__EsConnection>),
            quote!(tx: &mut __EsConnection,),
        ),
        None => (quote!(#krate::Projection), quote!()),
    }
}

/// The impl's generics: the type's own, and for a transactional projection the connection
/// `__EsConnection` it is implemented for.
fn generics_of(generics: &Generics, transaction: Option<&Type>, krate: &Path) -> Generics {
    let mut generics = generics.clone();
    if let Some(connection) = transaction {
        generics.params.push(parse_quote!(
            __EsConnection: ::core::marker::Send + #krate::projection::Through<#connection>
        ));
    }
    generics
}

/// Beside errors (a missing name): the projection's trait with a `handle` that never runs, so
/// running the type elsewhere adds no errors of its own; nothing for a trait impl block.
pub(crate) fn fallback(item: &ItemImpl, attrs: &Attrs) -> TokenStream {
    if item.trait_.is_some() {
        return TokenStream::new();
    }
    let krate = krate(attrs.krate.clone());
    let transaction = item.items.iter().find_map(|impl_item| match impl_item {
        ImplItem::Fn(method) => method.sig.inputs.iter().nth(1).and_then(transaction_of),
        _ => None,
    });
    let (trait_path, tx_param) = signature(transaction, &krate);
    let self_ty = &item.self_ty;
    let generics = generics_of(&item.generics, transaction, &krate);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    in_const(&quote! {
        impl #impl_generics #trait_path for #self_ty #where_clause {
            const NAME: &'static str = "";
            const EVENT_TYPES: &'static [&'static #krate::EventTypeInfo] = &[];
            async fn handle(
                &mut self,
                #tx_param
                _: &#krate::RecordedEvent,
            ) -> ::core::result::Result<(), #krate::ProjectionError> {
                ::core::unreachable!()
            }
        }
    })
}
