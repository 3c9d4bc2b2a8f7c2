//! `#[projection(name = "…")]`: async handlers, one per event type → `es_core::Projection` (or
//! `TransactionalProjection<C>` when the handlers take the batch's transaction) with the handled
//! types (for the store's filter), the dispatch, and the checkpoint name.

mod attrs;
mod emit;
mod model;

use proc_macro2::TokenStream;
use quote::quote;

use crate::expand::{AttributeInput, Macro, with_allow};
use crate::internals::ctxt::Ctxt;
use crate::internals::names;

pub(crate) use attrs::Attrs;
pub(crate) use model::Model;

/// The `#[projection]` attribute.
pub(crate) struct Projection;

impl Macro for Projection {
    type Input = AttributeInput;
    type Attrs = Attrs;
    type Model = Model;

    /// The well-formed handlers' code is emitted beside the errors of the others: one mistake
    /// costs one error, not also "`Balances` is not a `Projection`" wherever the type is run.
    const EMIT_BESIDE_ERRORS: bool = true;

    fn attrs(ctxt: &mut Ctxt, input: &AttributeInput) -> Attrs {
        attrs::parse(ctxt, &input.args)
    }

    fn model(ctxt: &mut Ctxt, input: &AttributeInput, attrs: &Attrs) -> Option<Model> {
        model::build(ctxt, &input.item, attrs)
    }

    /// The name is what `ProjectionName` accepts of a projection's own name.
    fn check(ctxt: &mut Ctxt, model: &Model) {
        if let Err(message) =
            names::check(&es_names::PROJECTION_OWN, "projection name", &model.name.value())
        {
            ctxt.error(&model.name, message);
        }
    }

    fn emit(model: &Model) -> TokenStream {
        emit::model(model)
    }

    fn fallback(input: &AttributeInput, attrs: &Attrs) -> TokenStream {
        emit::fallback(&input.item, attrs)
    }

    /// Handlers are async by contract, whether or not a given one awaits.
    fn keep(input: &AttributeInput) -> TokenStream {
        with_allow(&input.item, &quote!(clippy::unused_async))
    }
}
