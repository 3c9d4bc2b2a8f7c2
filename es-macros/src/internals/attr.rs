//! Attribute parsing helpers: one style (`parse_nested_meta`), duplicate-detecting slots.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;

use super::ctxt::Ctxt;
use super::symbol::Symbol;

/// A key that may appear once; a second occurrence is an error on that occurrence.
pub(crate) struct Slot<T> {
    attribute: Symbol,
    key: Symbol,
    value: Option<T>,
}

impl<T> Slot<T> {
    pub(crate) const fn new(attribute: Symbol, key: Symbol) -> Self {
        Self { attribute, key, value: None }
    }

    pub(crate) fn set(&mut self, ctxt: &mut Ctxt, meta: &ParseNestedMeta<'_>, value: T) {
        if self.value.is_some() {
            ctxt.error(
                &meta.path,
                format!("duplicate `{}` attribute `{}`", self.attribute, self.key),
            );
        } else {
            self.value = Some(value);
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref()
    }

    pub(crate) fn take(self) -> Option<T> {
        self.value
    }
}

/// Reports an unknown key and skips its value (`= …` or `(…)`), so parsing goes on.
pub(crate) fn unknown(
    ctxt: &mut Ctxt,
    meta: &ParseNestedMeta<'_>,
    attribute: Symbol,
    expected: &str,
) -> syn::Result<()> {
    let key = meta.path.get_ident().map_or_else(|| "?".to_owned(), ToString::to_string);
    ctxt.error(
        &meta.path,
        format!("unknown `{attribute}` attribute `{key}`; expected one of {expected}"),
    );
    skip_value(meta)
}

/// Skips a key's value.
pub(crate) fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        // Consume the inside too: syn reports unparsed tokens as an error of their own.
        let _: proc_macro2::TokenStream = content.parse()?;
    }
    Ok(())
}

/// Parses `crate = "path"` into a path.
pub(crate) fn crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    let literal: syn::LitStr = meta.value()?.parse()?;
    literal.parse().map_err(|_| {
        syn::Error::new(literal.span(), "`crate` takes a path, like `crate = \"::my_es_core\"`")
    })
}

/// The path from `crate = "…"`, else the crate the user depends on: `::es_core` when it is a
/// dependency (or cannot be told), else the facade `::es` (under whatever name it was renamed to),
/// so an application that depends only on `es` gets code that compiles.
pub(crate) fn krate(path: Option<syn::Path>) -> syn::Path {
    path.unwrap_or_else(default_crate)
}

fn default_crate() -> syn::Path {
    use proc_macro_crate::{FoundCrate, crate_name};
    let named = |name: &str| {
        let ident = syn::Ident::new(&name.replace('-', "_"), Span::call_site());
        syn::parse_quote!(::#ident)
    };
    match crate_name("es-core") {
        Ok(FoundCrate::Name(name)) => named(&name),
        Ok(FoundCrate::Itself) => syn::parse_quote!(::es_core),
        Err(_) => match crate_name("es") {
            Ok(FoundCrate::Name(name)) => named(&name),
            Ok(FoundCrate::Itself) => syn::parse_quote!(crate),
            Err(_) => syn::parse_quote!(::es_core),
        },
    }
}

/// A span for errors about an attribute as a whole.
pub(crate) fn span_of(attr: Option<&syn::Attribute>, fallback: Span) -> Span {
    attr.map_or(fallback, |attr| attr.path().get_ident().map_or(fallback, syn::Ident::span))
}
