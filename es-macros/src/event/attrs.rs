//! `#[event(…)]` and `#[pii(…)]` as written.

use syn::meta::ParseNestedMeta;
use syn::{Data, DeriveInput, Fields, LitInt, LitStr, Path, Type};

use crate::internals::attr::{Slot, crate_path, skip_value, unknown};
use crate::internals::ctxt::Ctxt;
use crate::internals::symbol::{
    CRATE, EVENT, FROM, NAME, PII, STREAM, SUBJECT, Symbol, TYPE, UPCAST, VERSION, WITH,
};

/// The attributes of an event struct or enum.
pub(crate) enum Attrs {
    Struct(StructAttrs),
    Enum(EnumAttrs),
    /// `Event` is not derived for unions; the error is reported.
    Union,
}

impl Attrs {
    pub(crate) fn krate(&self) -> Option<&Path> {
        match self {
            Self::Struct(attrs) => attrs.krate.as_ref(),
            Self::Enum(attrs) => attrs.krate.as_ref(),
            Self::Union => None,
        }
    }
}

/// `#[event(name = "…", version = N, upcast(…)…, crate = "…")]` and the fields' `#[pii]`.
pub(crate) struct StructAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<(u32, LitInt)>,
    pub(crate) upcasts: Vec<Upcast>,
    pub(crate) krate: Option<Path>,
    /// Each `#[pii(…)]` field.
    pub(crate) pii: Vec<PiiAttr>,
}

/// One field marked `#[pii(subject = "…")]` or `#[pii(stream)]`.
#[derive(Clone)]
pub(crate) struct PiiAttr {
    pub(crate) field: String,
    /// The subject field, or `None` for `#[pii(stream)]`.
    pub(crate) subject: Option<LitStr>,
    /// The field's type, which must be `Pii<T>`.
    pub(crate) ty: Type,
}

/// `#[event(crate = "…")]` on an enum.
pub(crate) struct EnumAttrs {
    pub(crate) krate: Option<Path>,
}

/// One `upcast(from = k, with = f)` or `upcast(from = k, type = T)`.
#[derive(Clone)]
pub(crate) struct Upcast {
    pub(crate) from: u32,
    pub(crate) from_literal: LitInt,
    pub(crate) step: Step,
}

/// How an upcaster reaches the next version.
#[derive(Clone)]
pub(crate) enum Step {
    /// A function from JSON to JSON.
    With(Path),
    /// An old struct that converts `Into` the next version's type.
    Type(Type),
}

const STRUCT_KEYS: &[Symbol] = &[NAME, VERSION, UPCAST, CRATE];

pub(crate) fn parse(ctxt: &mut Ctxt, input: &DeriveInput) -> Attrs {
    match &input.data {
        Data::Struct(data) => Attrs::Struct(parse_struct(ctxt, input, &data.fields)),
        Data::Enum(data) => {
            for variant in &data.variants {
                for attr in
                    variant.attrs.iter().filter(|attr| attr.path() == &EVENT || attr.path() == &PII)
                {
                    ctxt.error(attr, "put `#[event(…)]` and `#[pii(…)]` on the event struct the variant wraps, not on the variant");
                }
            }
            Attrs::Enum(parse_enum(ctxt, input))
        }
        Data::Union(data) => {
            ctxt.error(
                data.union_token,
                "`Event` cannot be derived for a union; use a struct or an enum of event structs",
            );
            Attrs::Union
        }
    }
}

fn parse_struct(ctxt: &mut Ctxt, input: &DeriveInput, fields: &Fields) -> StructAttrs {
    let mut name = Slot::new(EVENT, NAME);
    let mut version = Slot::new(EVENT, VERSION);
    let mut krate = Slot::new(EVENT, CRATE);
    let mut upcasts = Vec::new();
    for attr in input.attrs.iter().filter(|attr| attr.path() == &EVENT) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path == NAME {
                let literal: LitStr = meta.value()?.parse()?;
                name.set(ctxt, &meta, literal);
            } else if meta.path == VERSION {
                let literal: LitInt = meta.value()?.parse()?;
                match literal.base10_parse::<u32>() {
                    Ok(0) => ctxt.error(&literal, "event versions start at 1"),
                    Ok(value) if i32::try_from(value).is_err() => {
                        ctxt.error(&literal, "event versions run up to 2147483647");
                    }
                    Ok(value) => version.set(ctxt, &meta, (value, literal)),
                    Err(error) => ctxt.push(error),
                }
            } else if meta.path == UPCAST {
                if let Some(upcast) = parse_upcast(ctxt, &meta)? {
                    upcasts.push(upcast);
                }
            } else if meta.path == CRATE {
                let path = crate_path(&meta)?;
                krate.set(ctxt, &meta, path);
            } else {
                unknown(ctxt, &meta, EVENT, &Symbol::list(STRUCT_KEYS))?;
            }
            Ok(())
        });
        if let Err(error) = parsed {
            ctxt.push(error);
        }
    }
    StructAttrs {
        name: name.take(),
        version: version.take(),
        upcasts,
        krate: krate.take(),
        pii: parse_pii(ctxt, fields),
    }
}

fn parse_upcast(ctxt: &mut Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Upcast>> {
    let mut from = Slot::new(UPCAST, FROM);
    let mut step = Slot::new(UPCAST, WITH);
    // `from` given with a bad value is reported on the value; do not also say it is missing.
    let mut from_given = false;
    meta.parse_nested_meta(|inner| {
        if inner.path == FROM {
            from_given = true;
            let literal: LitInt = inner.value()?.parse()?;
            match literal.base10_parse::<u32>() {
                Ok(0) => ctxt.error(
                    &literal,
                    "event versions start at 1: an upcaster reads from version 1 or later",
                ),
                Ok(value) => from.set(ctxt, &inner, (value, literal)),
                Err(error) => ctxt.push(error),
            }
        } else if inner.path == WITH || inner.path == TYPE {
            let parsed = if inner.path == WITH {
                Step::With(inner.value()?.parse()?)
            } else {
                Step::Type(inner.value()?.parse()?)
            };
            if step.get().is_some() {
                ctxt.error(
                    &inner.path,
                    "an upcaster takes either `with = function` or `type = OldType`, not both",
                );
            } else {
                step.set(ctxt, &inner, parsed);
            }
        } else {
            unknown(ctxt, &inner, UPCAST, &Symbol::list(&[FROM, WITH, TYPE]))?;
        }
        Ok(())
    })?;
    match (from.take(), step.take()) {
        (Some((from, from_literal)), Some(step)) => Ok(Some(Upcast { from, from_literal, step })),
        (None, _) => {
            if !from_given {
                ctxt.error(
                    &meta.path,
                    "`upcast` needs `from = <version>`: the stored version it reads",
                );
            }
            Ok(None)
        }
        (Some(_), None) => {
            ctxt.error(&meta.path, "`upcast` needs `with = function` (JSON to JSON) or `type = OldType` (an old struct that converts `Into` the next version)");
            Ok(None)
        }
    }
}

/// Fields marked `#[pii(subject = "…")]` or `#[pii(stream)]`; a `Pii<…>` field without either is
/// an error (it would be stored in plain text).
fn parse_pii(ctxt: &mut Ctxt, fields: &Fields) -> Vec<PiiAttr> {
    const NEEDS_SUBJECT: &str = "`#[pii]` needs its data subject: `subject = \"field\"` (the field holding the subject's id) or `stream` (the stream is the subject)";
    let mut found = Vec::new();
    for field in fields {
        let mut marked = false;
        for attr in field.attrs.iter().filter(|attr| attr.path() == &PII) {
            if marked {
                ctxt.error(attr, "duplicate `#[pii]` on one field");
                continue;
            }
            marked = true;
            if matches!(attr.meta, syn::Meta::Path(_)) {
                ctxt.error(attr, NEEDS_SUBJECT);
                continue;
            }
            let Some(field_name) = &field.ident else {
                ctxt.error(attr, "`#[pii]` needs a named field: the field's name is recorded");
                continue;
            };
            let mut subject = Slot::new(PII, SUBJECT);
            let mut stream = Slot::new(PII, STREAM);
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path == SUBJECT {
                    let literal: LitStr = meta.value()?.parse()?;
                    subject.set(ctxt, &meta, literal);
                } else if meta.path == STREAM {
                    stream.set(ctxt, &meta, ());
                } else {
                    unknown(ctxt, &meta, PII, &Symbol::list(&[SUBJECT, STREAM]))?;
                }
                Ok(())
            });
            if let Err(error) = parsed {
                ctxt.push(error);
                continue;
            }
            let field_name = field_name.to_string();
            let ty = field.ty.clone();
            match (subject.take(), stream.take()) {
                (None, None) => ctxt.error(attr, NEEDS_SUBJECT),
                (Some(literal), Some(())) => ctxt.error(
                    literal,
                    "`#[pii]` takes `subject = \"…\"` or `stream`, not both: a field has one data subject",
                ),
                (subject, _) => found.push(PiiAttr { field: field_name, subject, ty }),
            }
        }
        if !marked && is_pii_type(&field.ty) {
            ctxt.error(
                &field.ty,
                "a `Pii<…>` field needs `#[pii(subject = \"…\")]` or `#[pii(stream)]`: without it the store would keep the value in plain text",
            );
        }
    }
    found
}

/// Whether a type is written `Pii<…>` (any path ending so).
fn is_pii_type(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none() && path.path.segments.last().is_some_and(|last| last.ident == "Pii"))
}

fn parse_enum(ctxt: &mut Ctxt, input: &DeriveInput) -> EnumAttrs {
    let mut krate = Slot::new(EVENT, CRATE);
    for attr in input.attrs.iter().filter(|attr| attr.path() == &EVENT) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path == CRATE {
                let path = crate_path(&meta)?;
                krate.set(ctxt, &meta, path);
            } else if meta.path == NAME || meta.path == VERSION || meta.path == UPCAST {
                let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
                ctxt.error(&meta.path, format!("`{key}` applies to event structs; an event enum takes the names and versions of the structs its variants wrap"));
                skip_value(&meta)?;
            } else {
                unknown(ctxt, &meta, EVENT, &format!("{} (on an enum)", Symbol::list(&[CRATE])))?;
            }
            Ok(())
        });
        if let Err(error) = parsed {
            ctxt.push(error);
        }
    }
    EnumAttrs { krate: krate.take() }
}
