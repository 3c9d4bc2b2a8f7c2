//! `#[derive(Aggregate)]`: the aggregate's name, types and snapshot policy; `apply` goes through
//! the user's `Apply` impl and `handle` through the `#[commands]` dispatch.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{DeriveInput, LitInt, LitStr, Path, Type};

use crate::attr::{Slot, crate_path, krate, span_of, unknown};
use crate::check;
use crate::ctxt::Ctxt;

const KEYS: &str = "`name`, `event`, `error`, `command`, `snapshot`, `crate`";

struct Snapshot {
    every: Option<u64>,
    version: u32,
}

pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut ctxt = Ctxt::default();
    if !matches!(input.data, syn::Data::Struct(_)) {
        ctxt.error(
            &input.ident,
            "`Aggregate` is derived for a struct holding the aggregate's state",
        );
    }
    if !input.generics.params.is_empty() {
        ctxt.error(&input.generics, "aggregates cannot have generic parameters");
    }
    let mut name = Slot::<LitStr>::new("aggregate", "name");
    let mut event = Slot::<Type>::new("aggregate", "event");
    let mut error = Slot::<Type>::new("aggregate", "error");
    let mut command = Slot::<Type>::new("aggregate", "command");
    let mut snapshot = Slot::<Snapshot>::new("aggregate", "snapshot");
    let mut krate_slot = Slot::<Path>::new("aggregate", "crate");
    let attr = input.attrs.iter().find(|attr| attr.path().is_ident("aggregate"));
    for attr in input.attrs.iter().filter(|attr| attr.path().is_ident("aggregate")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let literal: LitStr = meta.value()?.parse()?;
                if let Err(message) = check::category_name("aggregate name", &literal.value()) {
                    ctxt.error(&literal, message);
                }
                name.set(&mut ctxt, &meta, literal);
            } else if meta.path.is_ident("event") {
                let ty = meta.value()?.parse()?;
                event.set(&mut ctxt, &meta, ty);
            } else if meta.path.is_ident("error") {
                let ty = meta.value()?.parse()?;
                error.set(&mut ctxt, &meta, ty);
            } else if meta.path.is_ident("command") {
                let ty = meta.value()?.parse()?;
                command.set(&mut ctxt, &meta, ty);
            } else if meta.path.is_ident("snapshot") {
                let parsed = parse_snapshot(&mut ctxt, &meta)?;
                snapshot.set(&mut ctxt, &meta, parsed);
            } else if meta.path.is_ident("crate") {
                let path = crate_path(&meta)?;
                krate_slot.set(&mut ctxt, &meta, path);
            } else {
                unknown(&mut ctxt, &meta, "aggregate", KEYS)?;
            }
            Ok(())
        });
        if let Err(error) = parsed {
            ctxt.push(error);
        }
    }
    let ident = &input.ident;
    let attr_span = span_of(attr, ident.span());
    if event.get().is_none() {
        ctxt.push(syn::Error::new(
            attr_span,
            "`#[aggregate(…)]` needs `event = EventType`: the aggregate's event enum",
        ));
    }
    if error.get().is_none() {
        ctxt.push(syn::Error::new(
            attr_span,
            "`#[aggregate(…)]` needs `error = ErrorType`: the aggregate's domain error",
        ));
    }
    // A given name was checked on its literal; a name derived from the type is checked here.
    let name = if let Some(literal) = name.take() {
        literal.value()
    } else {
        let derived = check::snake_case(&ident.to_string());
        if let Err(message) = check::category_name("aggregate name", &derived) {
            ctxt.error(ident, format!("{message}; set one with `#[aggregate(name = \"…\")]`"));
        }
        derived
    };
    let krate = krate(krate_slot.take());
    if let Err(errors) = ctxt.finish() {
        let errors = errors.into_compile_error();
        let stub = if input.generics.params.is_empty() && matches!(input.data, syn::Data::Struct(_))
        {
            stub(ident, event.get(), error.get(), &krate)
        } else {
            TokenStream::new()
        };
        return Ok(quote! { #errors #stub });
    }
    let (Some(event), Some(error)) = (event.take(), error.take()) else {
        return Err(syn::Error::new(attr_span, "unreachable: checked above"));
    };
    let command = command.take().map_or_else(
        || {
            let default = format_ident!("{}Command", ident, span = ident.span());
            quote!(#default)
        },
        |ty| quote!(#ty),
    );
    let snapshot = match snapshot.take() {
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
    Ok(quote! {
        #[doc(hidden)]
        const _: () = {
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
        };
    })
}

fn parse_snapshot(ctxt: &mut Ctxt, meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Snapshot> {
    let mut every = Slot::<u64>::new("snapshot", "every");
    let mut version = Slot::<u32>::new("snapshot", "version");
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("every") {
            let literal: LitInt = inner.value()?.parse()?;
            match literal.base10_parse::<u64>() {
                Ok(0) => ctxt.error(&literal, "`every` is a number of events, at least 1"),
                Ok(value) => every.set(ctxt, &inner, value),
                Err(error) => ctxt.push(error),
            }
        } else if inner.path.is_ident("version") {
            let literal: LitInt = inner.value()?.parse()?;
            match literal.base10_parse::<u32>() {
                Ok(0) => ctxt.error(&literal, "snapshot versions start at 1"),
                Ok(value) => version.set(ctxt, &inner, value),
                Err(error) => ctxt.push(error),
            }
        } else {
            unknown(ctxt, &inner, "snapshot", "`every`, `version`")?;
        }
        Ok(())
    })?;
    Ok(Snapshot { every: every.take(), version: version.take().unwrap_or(1) })
}

/// Emitted beside errors, so the `#[commands]` block and other uses do not add errors of their own.
fn stub(
    ident: &syn::Ident,
    event: Option<&Type>,
    error: Option<&Type>,
    krate: &Path,
) -> TokenStream {
    let event = event.map_or_else(|| quote!(#krate::__private::NoEvent), |ty| quote!(#ty));
    let error = error.map_or_else(|| quote!(()), |ty| quote!(#ty));
    quote! {
        const _: () = {
            impl #krate::Aggregate for #ident {
                const NAME: &'static str = "";
                const SNAPSHOT: #krate::SnapshotPolicy = #krate::SnapshotPolicy::NEVER;
                type Event = #event;
                type Command = ();
                type Error = #error;
                fn evolve(&mut self, _: &Self::Event) { ::core::unreachable!() }
                fn handle(&self, _: ()) -> ::core::result::Result<::std::vec::Vec<Self::Event>, Self::Error> { ::core::unreachable!() }
            }
        };
    }
}
