//! The rules an event type must follow beyond its syntax.

use std::collections::{BTreeMap, BTreeSet};

use quote::quote;

use super::attrs::Step;
use super::model::{EventEnum, EventStruct, Model};
use crate::internals::ctxt::Ctxt;
use crate::internals::names;

pub(crate) fn model(ctxt: &mut Ctxt, model: &Model) {
    match model {
        Model::Struct(event) => {
            name(ctxt, event);
            pii(ctxt, event);
            chain(ctxt, event);
        }
        Model::Enum(event) => variants(ctxt, event),
    }
}

/// The stored name follows `EventType`'s rule.
fn name(ctxt: &mut Ctxt, event: &EventStruct) {
    if let Err(message) = names::check(&es_names::EVENT_TYPE, "event name", &event.name.value()) {
        ctxt.error(&event.name, message);
    }
}

/// Every `subject` names a field of the struct.
fn pii(ctxt: &mut Ctxt, event: &EventStruct) {
    for subject in event.pii.iter().filter_map(|pii| pii.subject.as_ref()) {
        if !event.fields.contains(&subject.value()) {
            ctxt.error(
                subject,
                format!(
                    "no field `{}` in `{}`; `subject` names the field holding the data subject's id",
                    subject.value(),
                    event.ident
                ),
            );
        }
    }
}

/// The upcaster chain: every `from` below the version, none twice, no gap up to the version,
/// and a typed step followed only by typed steps.
fn chain(ctxt: &mut Ctxt, event: &EventStruct) {
    let version = event.version;
    let mut seen = BTreeMap::new();
    for upcast in &event.upcasts {
        if upcast.from >= version {
            ctxt.error(&upcast.from_literal, format!("an upcaster reads an older version: `from` must be below the current version {version}"));
        } else if seen.insert(upcast.from, upcast).is_some() {
            ctxt.error(
                &upcast.from_literal,
                format!("duplicate upcaster from version {}", upcast.from),
            );
        }
    }
    let Some(&lowest) = seen.keys().next() else { return };
    let missing: Vec<String> = (lowest..version)
        .filter(|from| !seen.contains_key(from))
        .map(|from| from.to_string())
        .collect();
    if !missing.is_empty() {
        ctxt.push(syn::Error::new(
            event.version_span,
            format!(
                "gap in the upcaster chain: version {version} reads stored versions from {lowest}, but no upcaster reads version {}; add `upcast(from = {}, …)`",
                missing.join(", "),
                missing[0]
            ),
        ));
    }
    for (from, upcast) in &seen {
        if let (Step::Type(ty), Some(next)) = (&upcast.step, seen.get(&(from + 1)))
            && matches!(next.step, Step::With(_))
        {
            ctxt.error(ty, format!("a typed upcaster from version {from} must be followed by another typed upcaster or the current version, but version {} uses `with`", from + 1));
        }
    }
}

/// No struct wrapped twice.
fn variants(ctxt: &mut Ctxt, event: &EventEnum) {
    let mut seen = BTreeSet::new();
    for (_, ty) in &event.variants {
        if !seen.insert(quote!(#ty).to_string()) {
            ctxt.error(ty, "two variants wrap the same event struct; each stored event type maps to one variant");
        }
    }
}
