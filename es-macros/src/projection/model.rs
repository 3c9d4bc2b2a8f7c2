//! The handlers of a projection's `impl` block.

use std::collections::BTreeSet;

use quote::quote;
use syn::{FnArg, Generics, Ident, ImplItem, ItemImpl, LitStr, Path, Type};

use super::attrs::Attrs;
use crate::internals::attr::krate;
use crate::internals::ctxt::Ctxt;

/// A projection: its name is required; it holds the block's well-formed handlers.
pub(crate) struct Model {
    pub(crate) self_ty: Type,
    pub(crate) generics: Generics,
    pub(crate) name: LitStr,
    pub(crate) handlers: Vec<Handler>,
    /// The connection type of a transactional projection's handlers.
    pub(crate) transaction: Option<Type>,
    pub(crate) krate: Path,
}

/// `async fn on_deposited(&mut self, [tx: &mut C,] event: &Deposited[, meta: &RecordedEvent])`.
pub(crate) struct Handler {
    pub(crate) method: Ident,
    pub(crate) event: Type,
    pub(crate) with_meta: bool,
}

/// Whether a handler's first argument after `&mut self` is the batch's transaction
/// (`tx: &mut Connection`): then the projection is transactional over that connection type.
pub(crate) fn transaction_of(arg: &FnArg) -> Option<&Type> {
    match arg {
        FnArg::Typed(typed) => match &*typed.ty {
            Type::Reference(reference) if reference.mutability.is_some() => Some(&*reference.elem),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    }
}

pub(crate) fn build(ctxt: &mut Ctxt, item: &ItemImpl, attrs: &Attrs) -> Option<Model> {
    if attrs.name.is_none() {
        ctxt.push(syn::Error::new(
            attrs.span,
            "`#[projection]` needs `name = \"…\"`: the name its checkpoint is stored under",
        ));
    }
    if let Some((_, path, _)) = &item.trait_ {
        ctxt.error(
            path,
            "`#[projection]` goes on an inherent `impl` block of handlers, not a trait impl",
        );
    }
    let mut handlers = Vec::new();
    let mut seen = BTreeSet::new();
    // The connection type of transactional handlers, and a handler that does not take it.
    let mut transaction: Option<&Type> = None;
    let mut plain: Option<&Ident> = None;
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else { continue };
        let Some((handler, takes)) = handler(ctxt, &method.sig) else { continue };
        match takes {
            Some(connection) => match transaction {
                Some(seen) if quote!(#seen).to_string() != quote!(#connection).to_string() => {
                    ctxt.error(connection, "every transactional handler of a projection takes the same connection type");
                    continue;
                }
                _ => transaction = Some(connection),
            },
            None => plain = Some(&method.sig.ident),
        }
        let event = &handler.event;
        if !seen.insert(quote!(#event).to_string()) {
            ctxt.error(event, "two handlers for this event type; each event type has one handler");
            continue;
        }
        handlers.push((handler, takes.is_some()));
    }
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
    let name = attrs.name.clone()?;
    if item.trait_.is_some() {
        return None;
    }
    Some(Model {
        self_ty: (*item.self_ty).clone(),
        generics: item.generics.clone(),
        name,
        // Beside the error above, only the handlers of the projection's kind are dispatched.
        handlers: handlers
            .into_iter()
            .filter(|(_, takes_tx)| *takes_tx == transaction.is_some())
            .map(|(handler, _)| handler)
            .collect(),
        transaction: transaction.cloned(),
        krate: krate(attrs.krate.clone()),
    })
}

/// The handler of a well-formed method and the connection type it takes, if any; the error of
/// another.
fn handler<'a>(
    ctxt: &mut Ctxt,
    signature: &'a syn::Signature,
) -> Option<(Handler, Option<&'a Type>)> {
    if signature.asyncness.is_none() {
        ctxt.error(
            signature.fn_token,
            "projection handlers are `async fn`; put helper methods in another `impl` block",
        );
        return None;
    }
    let mut inputs = signature.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(receiver))
            if receiver.reference.is_some() && receiver.mutability.is_some() => {}
        _ => {
            ctxt.error(&signature.ident, "projection handlers take `&mut self` and the event: `async fn on_deposited(&mut self, event: &Deposited)`");
            return None;
        }
    }
    let mut next = inputs.next();
    let takes = next.and_then(transaction_of);
    if takes.is_some() {
        next = inputs.next();
    }
    let Some(FnArg::Typed(arg)) = next else {
        ctxt.error(
            &signature.ident,
            "projection handlers take the event after `&mut self`: `event: &Deposited`",
        );
        return None;
    };
    let event = match &*arg.ty {
        Type::Reference(reference) if reference.mutability.is_none() => &*reference.elem,
        other => {
            ctxt.error(other, "take the event by reference: `event: &Deposited`");
            return None;
        }
    };
    let with_meta = match inputs.next() {
        None => false,
        Some(FnArg::Typed(_)) if inputs.next().is_none() => true,
        Some(other) => {
            ctxt.error(other, "projection handlers take the event and, optionally, the envelope (`meta: &es_core::RecordedEvent`)");
            return None;
        }
    };
    Some((Handler { method: signature.ident.clone(), event: event.clone(), with_meta }, takes))
}
