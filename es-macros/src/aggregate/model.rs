//! What the code of an aggregate is generated from.

use syn::{DeriveInput, Ident, LitStr, Path, Type};

use super::attrs::{Attrs, Snapshot};
use crate::internals::attr::krate;
use crate::internals::ctxt::Ctxt;
use crate::internals::names;

/// An aggregate: its event and error types are required.
pub(crate) struct Model {
    pub(crate) ident: Ident,
    /// Given, or the type's name in snake case.
    pub(crate) name: String,
    /// The literal the name was given in, if it was.
    pub(crate) name_literal: Option<LitStr>,
    pub(crate) event: Type,
    pub(crate) error: Type,
    /// Given, or `{Type}Command` (what `#[commands]` generates).
    pub(crate) command: Type,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) krate: Path,
}

pub(crate) fn build(ctxt: &mut Ctxt, input: &DeriveInput, attrs: &Attrs) -> Option<Model> {
    let ident = &input.ident;
    let mut shaped = true;
    if !matches!(input.data, syn::Data::Struct(_)) {
        ctxt.error(ident, "`Aggregate` is derived for a struct holding the aggregate's state");
        shaped = false;
    }
    if !input.generics.params.is_empty() {
        ctxt.error(&input.generics, "aggregates cannot have generic parameters");
        shaped = false;
    }
    if attrs.event.is_none() {
        ctxt.push(syn::Error::new(
            attrs.span,
            "`#[aggregate(…)]` needs `event = EventType`: the aggregate's event enum",
        ));
    }
    if attrs.error.is_none() {
        ctxt.push(syn::Error::new(
            attrs.span,
            "`#[aggregate(…)]` needs `error = ErrorType`: the aggregate's domain error",
        ));
    }
    let (Some(event), Some(error), true) = (attrs.event.clone(), attrs.error.clone(), shaped)
    else {
        return None;
    };
    let command = attrs.command.clone().unwrap_or_else(|| {
        let default = quote::format_ident!("{}Command", ident, span = ident.span());
        syn::parse_quote!(#default)
    });
    Some(Model {
        ident: ident.clone(),
        name: attrs
            .name
            .as_ref()
            .map_or_else(|| names::snake_case(&ident.to_string()), LitStr::value),
        name_literal: attrs.name.clone(),
        event,
        error,
        command,
        snapshot: attrs.snapshot,
        krate: krate(attrs.krate.clone()),
    })
}
