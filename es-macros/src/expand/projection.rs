//! `#[projection(name = "…")]`: async handlers, one per event type → `es_core::Projection` with
//! the handled types (for the store's filter), the dispatch, and the checkpoint name.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ItemImpl, LitStr, Path, Type};

use crate::attr::{Slot, krate, unknown};
use crate::check;
use crate::ctxt::Ctxt;

struct Handler<'a> {
    method: &'a syn::Ident,
    event: &'a Type,
    with_meta: bool,
    /// Takes the transaction before the event.
    takes_tx: bool,
}

/// Whether a handler's first argument after `&mut self` is the batch's transaction
/// (`tx: &mut Connection`): then the projection is transactional over that connection type.
fn transaction_of(arg: &FnArg) -> Option<&Type> {
    match arg {
        FnArg::Typed(typed) => match &*typed.ty {
            Type::Reference(reference) if reference.mutability.is_some() => Some(&*reference.elem),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    }
}

/// The impl block, the projection impl for every well-formed handler, and the errors of the
/// others: one mistake costs one error, not also "`Balances` is not a `Projection`" wherever the
/// type is run.
pub(crate) fn expand(args: TokenStream, item: &ItemImpl) -> TokenStream {
    let (generated, errors) = generate(args, item);
    let errors = errors.map(syn::Error::into_compile_error);
    // Handlers are async by contract, whether or not a given one awaits.
    let item = super::with_allow(item, &quote!(clippy::unused_async));
    quote! { #item #generated #errors }
}

/// Parses `name = "…"` and `crate = "…"`.
fn parse_args(ctxt: &mut Ctxt, args: TokenStream) -> (Option<LitStr>, Option<Path>) {
    let mut name = Slot::<LitStr>::new("projection", "name");
    let mut krate_slot = Slot::<Path>::new("projection", "crate");
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let literal: LitStr = meta.value()?.parse()?;
            if let Err(message) = check::category_name("projection name", &literal.value()) {
                ctxt.error(&literal, message);
            }
            name.set(ctxt, &meta, literal);
        } else if meta.path.is_ident("crate") {
            let path = crate::attr::crate_path(&meta)?;
            krate_slot.set(ctxt, &meta, path);
        } else {
            unknown(ctxt, &meta, "projection", "`name`, `crate`")?;
        }
        Ok(())
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        ctxt.push(error);
    }
    (name.take(), krate_slot.take())
}

fn generate(args: TokenStream, item: &ItemImpl) -> (TokenStream, Option<syn::Error>) {
    let mut ctxt = Ctxt::default();
    let args_span = args.span();
    let (name, krate_path) = parse_args(&mut ctxt, args);
    if name.is_none() {
        ctxt.push(syn::Error::new(
            args_span,
            "`#[projection]` needs `name = \"…\"`: the name its checkpoint is stored under",
        ));
    }
    if let Some((_, path, _)) = &item.trait_ {
        ctxt.error(
            path,
            "`#[projection]` goes on an inherent `impl` block of handlers, not a trait impl",
        );
    }
    let krate = krate(krate_path);
    let mut handlers = Vec::new();
    let mut seen = BTreeSet::new();
    // The connection type of transactional handlers, and whether any handler is not one.
    let mut transaction: Option<&Type> = None;
    let mut plain: Option<&syn::Ident> = None;
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else { continue };
        let signature = &method.sig;
        if signature.asyncness.is_none() {
            ctxt.error(
                signature.fn_token,
                "projection handlers are `async fn`; put helper methods in another `impl` block",
            );
            continue;
        }
        let mut inputs = signature.inputs.iter();
        match inputs.next() {
            Some(FnArg::Receiver(receiver))
                if receiver.reference.is_some() && receiver.mutability.is_some() => {}
            _ => {
                ctxt.error(&signature.ident, "projection handlers take `&mut self` and the event: `async fn on_deposited(&mut self, event: &Deposited)`");
                continue;
            }
        }
        let mut next = inputs.next();
        let takes_tx = next.and_then(transaction_of).is_some();
        if let Some(connection) = next.and_then(transaction_of) {
            match transaction {
                Some(seen) if quote!(#seen).to_string() != quote!(#connection).to_string() => {
                    ctxt.error(connection, "every transactional handler of a projection takes the same connection type");
                    continue;
                }
                _ => transaction = Some(connection),
            }
            next = inputs.next();
        } else {
            plain = Some(&signature.ident);
        }
        let Some(FnArg::Typed(arg)) = next else {
            ctxt.error(
                &signature.ident,
                "projection handlers take the event after `&mut self`: `event: &Deposited`",
            );
            continue;
        };
        let event = match &*arg.ty {
            Type::Reference(reference) if reference.mutability.is_none() => &*reference.elem,
            other => {
                ctxt.error(other, "take the event by reference: `event: &Deposited`");
                continue;
            }
        };
        let with_meta = match inputs.next() {
            None => false,
            Some(FnArg::Typed(_)) if inputs.next().is_none() => true,
            Some(other) => {
                ctxt.error(other, "projection handlers take the event and, optionally, the envelope (`meta: &es_core::RecordedEvent`)");
                continue;
            }
        };
        if !seen.insert(quote!(#event).to_string()) {
            ctxt.error(event, "two handlers for this event type; each event type has one handler");
            continue;
        }
        handlers.push(Handler { method: &signature.ident, event, with_meta, takes_tx });
    }
    // Beside that error, only the handlers of the projection's kind are dispatched.
    handlers.retain(|handler| handler.takes_tx == transaction.is_some());
    if let (Some(connection), Some(method)) = (transaction, plain) {
        ctxt.error(method, format!(
            "this handler does not take the transaction: in a transactional projection every handler takes `tx: &mut {}` before the event",
            quote!(#connection)
        ));
    }
    if handlers.is_empty()
        && !item.items.iter().any(|impl_item| matches!(impl_item, ImplItem::Fn(_)))
    {
        ctxt.error(&item.self_ty, "`#[projection]` found no handlers in this block");
    }
    let errors = ctxt.finish().err();
    if item.trait_.is_some() {
        // Code for a trait impl block would only add errors of its own.
        return (TokenStream::new(), errors);
    }
    // Beside a missing name, the impl still names the checkpoint (never run: it does not compile).
    let name = name.map_or_else(String::new, |name| name.value());

    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let events: Vec<_> = handlers.iter().map(|handler| handler.event).collect();
    let is_event_struct = events.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            const _: fn() = || {
                fn handler_argument_must_be_an_event_struct<T: #krate::EventVariant>() {}
                handler_argument_must_be_an_event_struct::<#ty>();
            };
        }
    });
    let tx = transaction.map(|_| quote!(tx,));
    let dispatch = handlers.iter().map(|Handler { method, event, with_meta, .. }| {
        let call = if *with_meta {
            quote!(Self::#method(self, #tx &decoded, event).await)
        } else {
            quote!(Self::#method(self, #tx &decoded).await)
        };
        quote! {
            if event.event_type.as_str() == <#event as #krate::EventVariant>::INFO.name {
                let decoded = <#event as #krate::Event>::decode(event)?;
                return #call;
            }
        }
    });
    // Handlers that take the transaction make the projection transactional over its connection.
    let (trait_path, tx_param) = match transaction {
        Some(connection) => (
            quote!(#krate::projection::TransactionalProjection<#connection>),
            quote!(tx: &mut #connection,),
        ),
        None => (quote!(#krate::Projection), quote!()),
    };
    let generated = quote! {
        #[doc(hidden)]
        const _: () = {
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
            }

            // Two handled structs sharing a stored name would make the dispatch ambiguous.
            const _: () = #krate::__private::assert_unique_event_names(&[#(&<#events as #krate::EventVariant>::INFO),*]);
        };
    };
    (generated, errors)
}
