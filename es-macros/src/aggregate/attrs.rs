//! `#[aggregate(…)]` as written.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{DeriveInput, LitInt, LitStr, Path, Type};

use crate::internals::attr::{Slot, crate_path, span_of, unknown};
use crate::internals::ctxt::Ctxt;
use crate::internals::symbol::{
    AGGREGATE, COMMAND, CRATE, ERROR, EVENT, EVERY, NAME, SNAPSHOT, Symbol, VERSION,
};

/// `#[aggregate(name = "…", event = E, error = Err, command = C, snapshot(…), crate = "…")]`.
pub(crate) struct Attrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) event: Option<Type>,
    pub(crate) error: Option<Type>,
    pub(crate) command: Option<Type>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) krate: Option<Path>,
    /// Where errors about the attribute as a whole go.
    pub(crate) span: Span,
}

/// `snapshot(every = N, version = V)`.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) every: Option<u64>,
    pub(crate) version: u32,
}

const KEYS: &[Symbol] = &[NAME, EVENT, ERROR, COMMAND, SNAPSHOT, CRATE];

pub(crate) fn parse(ctxt: &mut Ctxt, input: &DeriveInput) -> Attrs {
    let mut name = Slot::new(AGGREGATE, NAME);
    let mut event = Slot::new(AGGREGATE, EVENT);
    let mut error = Slot::new(AGGREGATE, ERROR);
    let mut command = Slot::new(AGGREGATE, COMMAND);
    let mut snapshot = Slot::new(AGGREGATE, SNAPSHOT);
    let mut krate = Slot::new(AGGREGATE, CRATE);
    let attrs: Vec<_> = input.attrs.iter().filter(|attr| attr.path() == &AGGREGATE).collect();
    for attr in &attrs {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path == NAME {
                let literal: LitStr = meta.value()?.parse()?;
                name.set(ctxt, &meta, literal);
            } else if meta.path == EVENT {
                let ty = meta.value()?.parse()?;
                event.set(ctxt, &meta, ty);
            } else if meta.path == ERROR {
                let ty = meta.value()?.parse()?;
                error.set(ctxt, &meta, ty);
            } else if meta.path == COMMAND {
                let ty = meta.value()?.parse()?;
                command.set(ctxt, &meta, ty);
            } else if meta.path == SNAPSHOT {
                let parsed = parse_snapshot(ctxt, &meta)?;
                snapshot.set(ctxt, &meta, parsed);
            } else if meta.path == CRATE {
                let path = crate_path(&meta)?;
                krate.set(ctxt, &meta, path);
            } else {
                unknown(ctxt, &meta, AGGREGATE, &Symbol::list(KEYS))?;
            }
            Ok(())
        });
        if let Err(error) = parsed {
            ctxt.push(error);
        }
    }
    Attrs {
        name: name.take(),
        event: event.take(),
        error: error.take(),
        command: command.take(),
        snapshot: snapshot.take(),
        krate: krate.take(),
        span: span_of(attrs.first().copied(), input.ident.span()),
    }
}

fn parse_snapshot(ctxt: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Snapshot> {
    let mut every = Slot::new(SNAPSHOT, EVERY);
    let mut version = Slot::new(SNAPSHOT, VERSION);
    meta.parse_nested_meta(|inner| {
        if inner.path == EVERY {
            let literal: LitInt = inner.value()?.parse()?;
            match literal.base10_parse::<u64>() {
                Ok(0) => ctxt.error(&literal, "`every` is a number of events, at least 1"),
                Ok(value) => every.set(ctxt, &inner, value),
                Err(error) => ctxt.push(error),
            }
        } else if inner.path == VERSION {
            let literal: LitInt = inner.value()?.parse()?;
            match literal.base10_parse::<u32>() {
                Ok(0) => ctxt.error(&literal, "snapshot versions start at 1"),
                Ok(value) => version.set(ctxt, &inner, value),
                Err(error) => ctxt.push(error),
            }
        } else {
            unknown(ctxt, &inner, SNAPSHOT, &Symbol::list(&[EVERY, VERSION]))?;
        }
        Ok(())
    })?;
    Ok(Snapshot { every: every.take(), version: version.take().unwrap_or(1) })
}
