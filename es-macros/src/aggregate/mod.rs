//! `#[derive(Aggregate)]`: the aggregate's name, types and snapshot policy; `apply` goes through
//! the user's `Apply` impl and `handle` through the `#[commands]` dispatch.

mod attrs;
mod emit;
mod model;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::expand::Macro;
use crate::internals::ctxt::Ctxt;
use crate::internals::names;

pub(crate) use attrs::Attrs;
pub(crate) use model::Model;

/// The `Aggregate` derive.
pub(crate) struct DeriveAggregate;

impl Macro for DeriveAggregate {
    type Input = DeriveInput;
    type Attrs = Attrs;
    type Model = Model;

    fn attrs(ctxt: &mut Ctxt, input: &DeriveInput) -> Attrs {
        attrs::parse(ctxt, input)
    }

    fn model(ctxt: &mut Ctxt, input: &DeriveInput, attrs: &Attrs) -> Option<Model> {
        model::build(ctxt, input, attrs)
    }

    /// The name is its streams' category: `StreamId`'s category rule.
    fn check(ctxt: &mut Ctxt, model: &Model) {
        if let Err(message) = names::check(&es_names::CATEGORY, "aggregate name", &model.name) {
            match &model.name_literal {
                Some(literal) => ctxt.error(literal, message),
                None => ctxt.error(
                    &model.ident,
                    format!("{message}; set one with `#[aggregate(name = \"…\")]`"),
                ),
            }
        }
    }

    fn emit(model: &Model) -> TokenStream {
        emit::model(model)
    }

    fn fallback(input: &DeriveInput, attrs: &Attrs) -> TokenStream {
        emit::fallback(input, attrs)
    }
}
