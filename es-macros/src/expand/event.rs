//! `#[derive(Event)]`: event structs (name, version, upcasters, pii) and enums of them.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitInt, LitStr, Path, Type};

use crate::attr::{Slot, crate_path, krate, unknown};
use crate::check;
use crate::ctxt::Ctxt;

const STRUCT_KEYS: &str = "`name`, `version`, `upcast`, `crate`";

pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    match &input.data {
        Data::Struct(data) => Ok(derive_struct(input, &data.fields)),
        Data::Enum(data) => Ok(derive_enum(input, data)),
        Data::Union(data) => Err(syn::Error::new(
            data.union_token.span,
            "`Event` cannot be derived for a union; use a struct or an enum of event structs",
        )),
    }
}

/// One `upcast(from = k, with = f)` or `upcast(from = k, type = T)`.
struct Upcast {
    from: u32,
    from_literal: LitInt,
    step: Step,
}

enum Step {
    With(Path),
    Type(Type),
}

struct StructAttrs {
    name: Option<LitStr>,
    version: Option<(u32, LitInt)>,
    upcasts: Vec<Upcast>,
    krate: Option<Path>,
}

fn parse_struct_attrs(ctxt: &mut Ctxt, input: &DeriveInput) -> StructAttrs {
    let mut name = Slot::new("event", "name");
    let mut version = Slot::new("event", "version");
    let mut krate_slot = Slot::new("event", "crate");
    let mut upcasts = Vec::new();
    for attr in input.attrs.iter().filter(|attr| attr.path().is_ident("event")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let literal: LitStr = meta.value()?.parse()?;
                if let Err(message) = check::event_type_name(&literal.value()) {
                    ctxt.error(&literal, message);
                }
                name.set(ctxt, &meta, literal);
            } else if meta.path.is_ident("version") {
                let literal: LitInt = meta.value()?.parse()?;
                match literal.base10_parse::<u32>() {
                    Ok(0) => ctxt.error(&literal, "event versions start at 1"),
                    Ok(value) if i32::try_from(value).is_err() => {
                        ctxt.error(&literal, "event versions run up to 2147483647");
                    }
                    Ok(value) => version.set(ctxt, &meta, (value, literal)),
                    Err(error) => ctxt.push(error),
                }
            } else if meta.path.is_ident("upcast") {
                if let Some(upcast) = parse_upcast(ctxt, &meta)? {
                    upcasts.push(upcast);
                }
            } else if meta.path.is_ident("crate") {
                let path = crate_path(&meta)?;
                krate_slot.set(ctxt, &meta, path);
            } else {
                unknown(ctxt, &meta, "event", STRUCT_KEYS)?;
            }
            Ok(())
        });
        if let Err(error) = parsed {
            ctxt.push(error);
        }
    }
    StructAttrs { name: name.take(), version: version.take(), upcasts, krate: krate_slot.take() }
}

fn parse_upcast(
    ctxt: &mut Ctxt,
    meta: &syn::meta::ParseNestedMeta<'_>,
) -> syn::Result<Option<Upcast>> {
    let mut from = Slot::new("upcast", "from");
    let mut step = Slot::new("upcast", "with");
    // `from` given with a bad value is reported on the value; do not also say it is missing.
    let mut from_given = false;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("from") {
            from_given = true;
            let literal: LitInt = inner.value()?.parse()?;
            match literal.base10_parse::<u32>() {
                Ok(0) => ctxt.error(
                    &literal,
                    "event versions start at 1: an upcaster reads from version 1 or later",
                ),
                Ok(value) => from.set(ctxt, &inner, (value, literal)),
                Err(error) => ctxt.push(error),
            }
        } else if inner.path.is_ident("with") {
            let path: Path = inner.value()?.parse()?;
            if step.get().is_some() {
                ctxt.error(
                    &inner.path,
                    "an upcaster takes either `with = function` or `type = OldType`, not both",
                );
            } else {
                step.set(ctxt, &inner, Step::With(path));
            }
        } else if inner.path.is_ident("type") {
            let ty: Type = inner.value()?.parse()?;
            if step.get().is_some() {
                ctxt.error(
                    &inner.path,
                    "an upcaster takes either `with = function` or `type = OldType`, not both",
                );
            } else {
                step.set(ctxt, &inner, Step::Type(ty));
            }
        } else {
            unknown(ctxt, &inner, "upcast", "`from`, `with`, `type`")?;
        }
        Ok(())
    })?;
    match (from.take(), step.take()) {
        (Some((from, from_literal)), Some(step)) => Ok(Some(Upcast { from, from_literal, step })),
        (None, _) => {
            if !from_given {
                ctxt.error(
                    &meta.path,
                    "`upcast` needs `from = <version>`: the stored version it reads",
                );
            }
            Ok(None)
        }
        (Some(_), None) => {
            ctxt.error(&meta.path, "`upcast` needs `with = function` (JSON to JSON) or `type = OldType` (an old struct that converts `Into` the next version)");
            Ok(None)
        }
    }
}

/// Fields marked `#[pii(subject = "…")]`, checked against the struct's fields.
fn parse_pii(ctxt: &mut Ctxt, input: &DeriveInput, fields: &Fields) -> Vec<(String, String)> {
    let names: BTreeSet<String> =
        fields.iter().filter_map(|field| field.ident.as_ref().map(ToString::to_string)).collect();
    let mut found = Vec::new();
    for field in fields {
        let mut marked = false;
        for attr in field.attrs.iter().filter(|attr| attr.path().is_ident("pii")) {
            if marked {
                ctxt.error(attr, "duplicate `#[pii]` on one field");
                continue;
            }
            marked = true;
            if matches!(attr.meta, syn::Meta::Path(_)) {
                ctxt.error(
                    attr,
                    "`#[pii]` needs `subject = \"field\"`: the field that names the data subject",
                );
                continue;
            }
            let Some(field_name) = &field.ident else {
                ctxt.error(attr, "`#[pii]` needs a named field: the field's name is recorded");
                continue;
            };
            let mut subject = Slot::new("pii", "subject");
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("subject") {
                    let literal: LitStr = meta.value()?.parse()?;
                    subject.set(ctxt, &meta, literal);
                } else {
                    unknown(ctxt, &meta, "pii", "`subject`")?;
                }
                Ok(())
            });
            if let Err(error) = parsed {
                ctxt.push(error);
                continue;
            }
            match subject.take() {
                None => ctxt.error(attr, "`#[pii]` needs `subject = \"field\"`: the field that names the data subject"),
                Some(literal) if !names.contains(&literal.value()) => ctxt.error(
                    &literal,
                    format!("no field `{}` in `{}`; `subject` names the field holding the data subject's id", literal.value(), input.ident),
                ),
                Some(literal) => found.push((field_name.to_string(), literal.value())),
            }
        }
    }
    found
}

/// Checks the chain: every `from` below the version, none twice, no gap up to the version, and a
/// typed step followed only by typed steps.
fn check_chain(ctxt: &mut Ctxt, version: u32, version_span: Span, upcasts: &[Upcast]) {
    let mut seen = BTreeMap::new();
    for upcast in upcasts {
        if upcast.from >= version {
            ctxt.error(&upcast.from_literal, format!("an upcaster reads an older version: `from` must be below the current version {version}"));
        } else if seen.insert(upcast.from, upcast).is_some() {
            ctxt.error(
                &upcast.from_literal,
                format!("duplicate upcaster from version {}", upcast.from),
            );
        }
    }
    let Some(&lowest) = seen.keys().next() else { return };
    let missing: Vec<String> = (lowest..version)
        .filter(|from| !seen.contains_key(from))
        .map(|from| from.to_string())
        .collect();
    if !missing.is_empty() {
        ctxt.push(syn::Error::new(
            version_span,
            format!(
                "gap in the upcaster chain: version {version} reads stored versions from {lowest}, but no upcaster reads version {}; add `upcast(from = {}, …)`",
                missing.join(", "),
                missing[0]
            ),
        ));
    }
    for (from, upcast) in &seen {
        if let (Step::Type(ty), Some(next)) = (&upcast.step, seen.get(&(from + 1)))
            && matches!(next.step, Step::With(_))
        {
            ctxt.error(ty, format!("a typed upcaster from version {from} must be followed by another typed upcaster or the current version, but version {} uses `with`", from + 1));
        }
    }
}

fn derive_struct(input: &DeriveInput, fields: &Fields) -> TokenStream {
    let mut ctxt = Ctxt::default();
    if !input.generics.params.is_empty() {
        ctxt.error(
            &input.generics,
            "event types cannot have generic parameters: their stored name and version are fixed",
        );
    }
    let attrs = parse_struct_attrs(&mut ctxt, input);
    let pii = parse_pii(&mut ctxt, input, fields);
    let ident = &input.ident;
    let name = if let Some(literal) = &attrs.name {
        literal.value()
    } else {
        // The stored name is the event's identity in the log: derived from the type's name, a
        // rename of the type would silently orphan every stored event of it.
        ctxt.error(
            ident,
            format!(
                "`#[derive(Event)]` needs the name stored with each event: add `#[event(name = \"{}\")]`; \
                 it is explicit so that renaming the type never renames stored events",
                check::suggested_event_name(&ident.to_string())
            ),
        );
        // Never emitted: with an error, only the stub is (see `stub_struct`).
        String::new()
    };
    let (version, version_span) = attrs
        .version
        .as_ref()
        .map_or((1, ident.span()), |(value, literal)| (*value, literal.span()));
    check_chain(&mut ctxt, version, version_span, &attrs.upcasts);
    let krate = krate(attrs.krate.clone());
    // No stub for a generic type: it could not be valid either, and would only add errors.
    let stub = if input.generics.params.is_empty() {
        stub_struct(input, &krate)
    } else {
        TokenStream::new()
    };
    if let Err(errors) = ctxt.finish() {
        let errors = errors.into_compile_error();
        return quote! { #errors #stub };
    }

    let pii = pii
        .iter()
        .map(|(field, subject)| quote! { #krate::PiiField { field: #field, subject: #subject } });
    let steps = steps(&attrs.upcasts, version, ident, &krate);
    quote! {
        #[doc(hidden)]
        const _: () = {
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
        };
    }
}

/// One `(from, upcaster)` pair per step; typed steps become a function that deserializes the old
/// type and serializes the next version's type.
fn steps(upcasts: &[Upcast], version: u32, ident: &syn::Ident, krate: &Path) -> Vec<TokenStream> {
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

/// What is emitted beside errors: the trait impls with bodies that cannot run, so uses of the type
/// elsewhere do not add errors of their own.
fn stub_struct(input: &DeriveInput, krate: &Path) -> TokenStream {
    let ident = &input.ident;
    // The type's own name, so an enum of several stubbed structs does not also report them as
    // sharing a stored name.
    let name = ident.to_string();
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        const _: () = {
            impl #impl_generics #krate::EventVariant for #ident #type_generics #where_clause {
                const INFO: #krate::EventTypeInfo = #krate::EventTypeInfo { name: #name, version: 1, pii: &[] };
            }
            impl #impl_generics #krate::Event for #ident #type_generics #where_clause {
                const TYPES: &'static [&'static #krate::EventTypeInfo] = &[];
                fn type_info(&self) -> &'static #krate::EventTypeInfo { ::core::unreachable!() }
                fn to_payload(&self) -> ::core::result::Result<#krate::Payload, #krate::PayloadError> { ::core::unreachable!() }
                fn from_stored(_: &str, _: u32, _: &#krate::Payload) -> ::core::result::Result<Self, #krate::DecodeError> { ::core::unreachable!() }
            }
        };
    }
}

fn derive_enum(input: &DeriveInput, data: &syn::DataEnum) -> TokenStream {
    let mut ctxt = Ctxt::default();
    if !input.generics.params.is_empty() {
        ctxt.error(
            &input.generics,
            "event types cannot have generic parameters: their stored names and versions are fixed",
        );
    }
    let mut krate_slot = Slot::new("event", "crate");
    for attr in input.attrs.iter().filter(|attr| attr.path().is_ident("event")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let path = crate_path(&meta)?;
                krate_slot.set(&mut ctxt, &meta, path);
            } else if ["name", "version", "upcast"].iter().any(|key| meta.path.is_ident(key)) {
                let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
                ctxt.error(&meta.path, format!("`{key}` applies to event structs; an event enum takes the names and versions of the structs its variants wrap"));
                crate::attr::skip_value(&meta)?;
            } else {
                unknown(&mut ctxt, &meta, "event", "`crate` (on an enum)")?;
            }
            Ok(())
        });
        if let Err(error) = parsed {
            ctxt.push(error);
        }
    }
    let krate = krate(krate_slot.take());
    if data.variants.is_empty() {
        ctxt.error(
            &input.ident,
            "an event enum needs at least one variant wrapping an event struct",
        );
    }
    let mut variants = Vec::new();
    let mut seen_types = BTreeSet::new();
    for variant in &data.variants {
        for attr in variant
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("event") || attr.path().is_ident("pii"))
        {
            ctxt.error(attr, "put `#[event(…)]` and `#[pii(…)]` on the event struct the variant wraps, not on the variant");
        }
        match &variant.fields {
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                let ty = &fields.unnamed[0].ty;
                let key = quote!(#ty).to_string();
                if !seen_types.insert(key) {
                    ctxt.error(ty, "two variants wrap the same event struct; each stored event type maps to one variant");
                }
                variants.push((&variant.ident, ty));
            }
            _ => ctxt.error(
                variant,
                format!(
                    "event enum variants wrap one event struct, like `{}(SomeEvent)`",
                    variant.ident
                ),
            ),
        }
    }
    let ident = &input.ident;
    if let Err(errors) = ctxt.finish() {
        let errors = errors.into_compile_error();
        let stub = if input.generics.params.is_empty() {
            stub_enum(input, &krate)
        } else {
            TokenStream::new()
        };
        return quote! { #errors #stub };
    }

    let variant_idents: Vec<_> = variants.iter().map(|(variant, _)| *variant).collect();
    let variant_types: Vec<_> = variants.iter().map(|(_, ty)| *ty).collect();
    let is_event_struct = variant_types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: fn() = || {
                fn variant_must_be_an_event_struct<T: #krate::EventVariant>() {}
                variant_must_be_an_event_struct::<#ty>();
            };
        }
    });
    quote! {
        #[doc(hidden)]
        const _: () = {
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
        };
    }
}

fn stub_enum(input: &DeriveInput, krate: &Path) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        const _: () = {
            impl #impl_generics #krate::Event for #ident #type_generics #where_clause {
                const TYPES: &'static [&'static #krate::EventTypeInfo] = &[];
                fn type_info(&self) -> &'static #krate::EventTypeInfo { ::core::unreachable!() }
                fn to_payload(&self) -> ::core::result::Result<#krate::Payload, #krate::PayloadError> { ::core::unreachable!() }
                fn from_stored(_: &str, _: u32, _: &#krate::Payload) -> ::core::result::Result<Self, #krate::DecodeError> { ::core::unreachable!() }
            }
        };
    }
}
