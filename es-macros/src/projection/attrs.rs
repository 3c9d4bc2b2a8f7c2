//! `#[projection(…)]`'s arguments as written.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{LitStr, Path};

use crate::internals::attr::{Slot, crate_path, unknown};
use crate::internals::ctxt::Ctxt;
use crate::internals::symbol::{CRATE, NAME, PROJECTION, Symbol};

/// `#[projection(name = "…", crate = "…")]`.
pub(crate) struct Attrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
    /// Where an error about the arguments as a whole goes.
    pub(crate) span: Span,
}

pub(crate) fn parse(ctxt: &mut Ctxt, args: &TokenStream) -> Attrs {
    let mut name = Slot::new(PROJECTION, NAME);
    let mut krate = Slot::new(PROJECTION, CRATE);
    let parser = syn::meta::parser(|meta| {
        if meta.path == NAME {
            let literal: LitStr = meta.value()?.parse()?;
            name.set(ctxt, &meta, literal);
        } else if meta.path == CRATE {
            let path = crate_path(&meta)?;
            krate.set(ctxt, &meta, path);
        } else {
            unknown(ctxt, &meta, PROJECTION, &Symbol::list(&[NAME, CRATE]))?;
        }
        Ok(())
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args.clone()) {
        ctxt.push(error);
    }
    Attrs { name: name.take(), krate: krate.take(), span: args.span() }
}
