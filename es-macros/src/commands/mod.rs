//! `#[commands]`: one method per command → the command enum, its `From` impls and the dispatch.

mod emit;
mod model;

use proc_macro2::TokenStream;
use quote::quote;
use syn::Path;

use crate::expand::{AttributeInput, Macro, with_allow};
use crate::internals::attr::{Slot, crate_path, unknown};
use crate::internals::ctxt::Ctxt;
use crate::internals::symbol::{COMMANDS, CRATE, Symbol};

pub(crate) use model::Model;

/// The `#[commands]` attribute.
pub(crate) struct Commands;

/// `#[commands(crate = "…")]`.
pub(crate) struct Attrs {
    krate: Option<Path>,
}

impl Macro for Commands {
    type Input = AttributeInput;
    type Attrs = Attrs;
    type Model = Model;

    /// The well-formed command methods' code is emitted beside the errors of the others: one
    /// mistake costs one error, not a cascade of "cannot find type `AccountCommand`" wherever the
    /// aggregate is used.
    const EMIT_BESIDE_ERRORS: bool = true;

    fn attrs(ctxt: &mut Ctxt, input: &AttributeInput) -> Attrs {
        let mut krate = Slot::new(COMMANDS, CRATE);
        let parser = syn::meta::parser(|meta| {
            if meta.path == CRATE {
                let path = crate_path(&meta)?;
                krate.set(ctxt, &meta, path);
            } else {
                let expected = format!(
                    "{} (the enum is named after the type: `AccountCommand` for `Account`)",
                    Symbol::list(&[CRATE])
                );
                unknown(ctxt, &meta, COMMANDS, &expected)?;
            }
            Ok(())
        });
        if let Err(error) = syn::parse::Parser::parse2(parser, input.args.clone()) {
            ctxt.push(error);
        }
        Attrs { krate: krate.take() }
    }

    fn model(ctxt: &mut Ctxt, input: &AttributeInput, attrs: &Attrs) -> Option<Model> {
        model::build(ctxt, &input.item, attrs.krate.clone())
    }

    /// Everything is checked while the model is built: a method that breaks a rule is left out
    /// of it, with its error.
    fn check(_: &mut Ctxt, _: &Model) {}

    fn emit(model: &Model) -> TokenStream {
        emit::model(model)
    }

    /// Code for a generic block or a trait impl would only add errors of its own.
    fn fallback(_: &AttributeInput, _: &Attrs) -> TokenStream {
        TokenStream::new()
    }

    /// Commands are taken by value by contract, whether or not a method consumes its own.
    fn keep(input: &AttributeInput) -> TokenStream {
        with_allow(&input.item, &quote!(clippy::needless_pass_by_value))
    }
}
