//! `#[derive(Event)]`: event structs (name, version, upcasters, personal data) and enums of them.

mod attrs;
mod check;
mod emit;
mod model;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::expand::Macro;
use crate::internals::ctxt::Ctxt;

pub(crate) use attrs::Attrs;
pub(crate) use model::Model;

/// The `Event` derive.
pub(crate) struct DeriveEvent;

impl Macro for DeriveEvent {
    type Input = DeriveInput;
    type Attrs = Attrs;
    type Model = Model;

    fn attrs(ctxt: &mut Ctxt, input: &DeriveInput) -> Attrs {
        attrs::parse(ctxt, input)
    }

    fn model(ctxt: &mut Ctxt, input: &DeriveInput, attrs: &Attrs) -> Option<Model> {
        model::build(ctxt, input, attrs)
    }

    fn check(ctxt: &mut Ctxt, model: &Model) {
        check::model(ctxt, model);
    }

    fn emit(model: &Model) -> TokenStream {
        emit::model(model)
    }

    fn fallback(input: &DeriveInput, attrs: &Attrs) -> TokenStream {
        emit::fallback(input, attrs)
    }
}
