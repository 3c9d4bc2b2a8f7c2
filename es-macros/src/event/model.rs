//! What the code of an event type is generated from.

use std::collections::BTreeSet;

use proc_macro2::Span;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Path, Type};

use super::attrs::{Attrs, PiiAttr, Upcast};
use crate::internals::attr::krate;
use crate::internals::ctxt::Ctxt;
use crate::internals::names;

/// An event struct or an enum of them.
pub(crate) enum Model {
    Struct(EventStruct),
    Enum(EventEnum),
}

/// An event struct: its stored name is required.
pub(crate) struct EventStruct {
    pub(crate) ident: Ident,
    pub(crate) name: LitStr,
    pub(crate) version: u32,
    /// Where errors about the version go: its literal, else the type's name.
    pub(crate) version_span: Span,
    pub(crate) upcasts: Vec<Upcast>,
    /// Each personal-data field.
    pub(crate) pii: Vec<PiiAttr>,
    /// The struct's named fields, which a `subject` must name.
    pub(crate) fields: BTreeSet<String>,
    pub(crate) krate: Path,
}

/// An enum whose every variant wraps one event struct.
pub(crate) struct EventEnum {
    pub(crate) ident: Ident,
    /// `(variant, wrapped struct)`.
    pub(crate) variants: Vec<(Ident, Type)>,
    pub(crate) krate: Path,
}

pub(crate) fn build(ctxt: &mut Ctxt, input: &DeriveInput, attrs: &Attrs) -> Option<Model> {
    if !input.generics.params.is_empty() {
        ctxt.error(
            &input.generics,
            "event types cannot have generic parameters: their stored names and versions are fixed",
        );
        return None;
    }
    match (&input.data, attrs) {
        (Data::Struct(data), Attrs::Struct(attrs)) => {
            let ident = &input.ident;
            let Some(name) = attrs.name.clone() else {
                // The stored name is the event's identity in the log: derived from the type's
                // name, a rename of the type would silently orphan every stored event of it.
                ctxt.error(
                    ident,
                    format!(
                        "`#[derive(Event)]` needs the name stored with each event: add `#[event(name = \"{}\")]`; \
                         it is explicit so that renaming the type never renames stored events",
                        names::suggested_event_name(&ident.to_string())
                    ),
                );
                return None;
            };
            let (version, version_span) = attrs
                .version
                .as_ref()
                .map_or((1, ident.span()), |(value, literal)| (*value, literal.span()));
            Some(Model::Struct(EventStruct {
                ident: ident.clone(),
                name,
                version,
                version_span,
                upcasts: attrs.upcasts.clone(),
                pii: attrs.pii.clone(),
                fields: field_names(&data.fields),
                krate: krate(attrs.krate.clone()),
            }))
        }
        (Data::Enum(data), Attrs::Enum(attrs)) => {
            if data.variants.is_empty() {
                ctxt.error(
                    &input.ident,
                    "an event enum needs at least one variant wrapping an event struct",
                );
            }
            let mut variants = Vec::new();
            for variant in &data.variants {
                match &variant.fields {
                    Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                        variants.push((variant.ident.clone(), fields.unnamed[0].ty.clone()));
                    }
                    _ => ctxt.error(
                        variant,
                        format!(
                            "event enum variants wrap one event struct, like `{}(SomeEvent)`",
                            variant.ident
                        ),
                    ),
                }
            }
            Some(Model::Enum(EventEnum {
                ident: input.ident.clone(),
                variants,
                krate: krate(attrs.krate.clone()),
            }))
        }
        // A union: reported while parsing the attributes.
        _ => None,
    }
}

fn field_names(fields: &Fields) -> BTreeSet<String> {
    fields.iter().filter_map(|field| field.ident.as_ref().map(ToString::to_string)).collect()
}
