//! The code of an event type: `EventVariant` and `Event` for a struct; `Event`, `From` and
//! `Decision` for an enum; and the fallback stubs.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, Path};

use super::attrs::{Attrs, Step, Upcast};
use super::model::{EventEnum, EventStruct, Model};
use crate::expand::in_const;
use crate::internals::attr::krate;

pub(crate) fn model(model: &Model) -> TokenStream {
    match model {
        Model::Struct(event) => event_struct(event),
        Model::Enum(event) => event_enum(event),
    }
}

fn event_struct(event: &EventStruct) -> TokenStream {
    let EventStruct { ident, name, version, krate, .. } = event;
    let pii = event.pii.iter().map(|pii| {
        let field = &pii.field;
        let subject = pii.subject.as_ref().map_or_else(
            || quote! { #krate::PiiSubject::Stream },
            |subject| quote! { #krate::PiiSubject::Field(#subject) },
        );
        quote! { #krate::PiiField { field: #field, subject: #subject } }
    });
    // A `#[pii]` field must be `Pii<T>`: the error points at its type.
    let pii_types = event.pii.iter().map(|pii| {
        let ty = &pii.ty;
        quote_spanned! {ty.span()=>
            const _: () = #krate::__private::assert_pii_field::<#ty>();
        }
    });
    let steps = steps(&event.upcasts, *version, ident, krate);
    in_const(&quote! {
        #(#pii_types)*

        #[automatically_derived]
        impl #krate::EventVariant for #ident {
            const INFO: #krate::EventTypeInfo = #krate::EventTypeInfo {
                name: #name,
                version: #version,
                pii: &[#(#pii),*],
            };
        }

        #[automatically_derived]
        impl #krate::Event for #ident {
            const TYPES: &'static [&'static #krate::EventTypeInfo] = &[&<Self as #krate::EventVariant>::INFO];

            fn type_info(&self) -> &'static #krate::EventTypeInfo {
                Self::TYPES[0]
            }

            fn to_payload(&self) -> ::core::result::Result<#krate::Payload, #krate::PayloadError> {
                #krate::Payload::from_value(self)
            }

            fn from_stored(
                event_type: &str,
                schema_version: u32,
                payload: &#krate::Payload,
            ) -> ::core::result::Result<Self, #krate::DecodeError> {
                #krate::__private::decode_variant::<Self>(event_type, schema_version, payload, &[#(#steps),*])
            }
        }
    })
}

/// One `(from, upcaster)` pair per step; typed steps become a function that deserializes the old
/// type and serializes the next version's type.
fn steps(upcasts: &[Upcast], version: u32, ident: &Ident, krate: &Path) -> Vec<TokenStream> {
    let by_from: BTreeMap<u32, &Upcast> =
        upcasts.iter().map(|upcast| (upcast.from, upcast)).collect();
    by_from
        .iter()
        .map(|(from, upcast)| {
            let from_lit = *from;
            match &upcast.step {
                Step::With(path) => quote_spanned! {path.span()=>
                    (#from_lit, #path as #krate::upcast::Upcaster)
                },
                Step::Type(old) => {
                    let next = match by_from.get(&(from + 1)) {
                        Some(Upcast { step: Step::Type(next), .. }) if from + 1 < version => quote!(#next),
                        // A nested fn cannot name `Self`.
                        _ => quote!(#ident),
                    };
                    quote_spanned! {old.span()=>
                        (#from_lit, {
                            fn upcast(
                                value: #krate::__private::serde_json::Value,
                            ) -> ::core::result::Result<#krate::__private::serde_json::Value, #krate::upcast::UpcastError> {
                                let old: #old = #krate::__private::serde_json::from_value(value)?;
                                let next: #next = ::core::convert::Into::into(old);
                                ::core::result::Result::Ok(#krate::__private::serde_json::to_value(next)?)
                            }
                            upcast as #krate::upcast::Upcaster
                        })
                    }
                }
            }
        })
        .collect()
}

fn event_enum(event: &EventEnum) -> TokenStream {
    let EventEnum { ident, krate, .. } = event;
    let variant_idents: Vec<_> = event.variants.iter().map(|(variant, _)| variant).collect();
    let variant_types: Vec<_> = event.variants.iter().map(|(_, ty)| ty).collect();
    let is_event_struct = variant_types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: fn() = || {
                fn variant_must_be_an_event_struct<T: #krate::EventVariant>() {}
                variant_must_be_an_event_struct::<#ty>();
            };
        }
    });
    in_const(&quote! {
        #(#is_event_struct)*

        #[automatically_derived]
        impl #krate::Event for #ident {
            const TYPES: &'static [&'static #krate::EventTypeInfo] = &[#(&<#variant_types as #krate::EventVariant>::INFO),*];

            fn type_info(&self) -> &'static #krate::EventTypeInfo {
                match self {
                    #(Self::#variant_idents(event) => #krate::Event::type_info(event),)*
                }
            }

            fn to_payload(&self) -> ::core::result::Result<#krate::Payload, #krate::PayloadError> {
                match self {
                    #(Self::#variant_idents(event) => #krate::Event::to_payload(event),)*
                }
            }

            fn from_stored(
                event_type: &str,
                schema_version: u32,
                payload: &#krate::Payload,
            ) -> ::core::result::Result<Self, #krate::DecodeError> {
                #(
                    if event_type == <#variant_types as #krate::EventVariant>::INFO.name {
                        return <#variant_types as #krate::Event>::from_stored(event_type, schema_version, payload)
                            .map(Self::#variant_idents);
                    }
                )*
                ::core::result::Result::Err(#krate::DecodeError::UnknownType {
                    event_type: ::core::convert::Into::into(event_type),
                    known: #krate::KnownTypes(<Self as #krate::Event>::TYPES),
                })
            }
        }

        #(
            #[automatically_derived]
            impl ::core::convert::From<#variant_types> for #ident {
                fn from(event: #variant_types) -> Self {
                    Self::#variant_idents(event)
                }
            }

            #[automatically_derived]
            impl #krate::Decision<#ident> for #variant_types {
                fn into_events(self) -> ::std::vec::Vec<#ident> {
                    ::std::vec![#ident::#variant_idents(self)]
                }
            }
        )*

        #[automatically_derived]
        impl #krate::Decision<#ident> for #ident {
            fn into_events(self) -> ::std::vec::Vec<#ident> {
                ::std::vec![self]
            }
        }

        // Two variants whose structs share a stored name would make reads ambiguous.
        const _: () = #krate::__private::assert_unique_event_names(<#ident as #krate::Event>::TYPES);
    })
}

/// The trait impls with bodies that cannot run, so uses of the type elsewhere do not add errors
/// of their own; nothing for a generic type or a union (no impl of them could be valid).
pub(crate) fn fallback(input: &DeriveInput, attrs: &Attrs) -> TokenStream {
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let krate = krate(attrs.krate().cloned());
    let unreachable_event = quote! {
        impl #krate::Event for #ident {
            const TYPES: &'static [&'static #krate::EventTypeInfo] = &[];
            fn type_info(&self) -> &'static #krate::EventTypeInfo { ::core::unreachable!() }
            fn to_payload(&self) -> ::core::result::Result<#krate::Payload, #krate::PayloadError> { ::core::unreachable!() }
            fn from_stored(_: &str, _: u32, _: &#krate::Payload) -> ::core::result::Result<Self, #krate::DecodeError> { ::core::unreachable!() }
        }
    };
    match attrs {
        Attrs::Struct(_) => {
            // The type's own name, so an enum of several stubbed structs does not also report
            // them as sharing a stored name.
            let name = ident.to_string();
            in_const(&quote! {
                impl #krate::EventVariant for #ident {
                    const INFO: #krate::EventTypeInfo = #krate::EventTypeInfo { name: #name, version: 1, pii: &[] };
                }
                #unreachable_event
            })
        }
        Attrs::Enum(_) => in_const(&unreachable_event),
        Attrs::Union => TokenStream::new(),
    }
}
