//! Parse, check, emit: one module per macro.

pub(crate) mod aggregate;
pub(crate) mod commands;
pub(crate) mod event;
pub(crate) mod projection;

use proc_macro2::TokenStream;
use syn::{ImplItem, ItemImpl};

/// The impl block with `#[allow(lint)]` on each of its methods.
pub(crate) fn with_allow(item: &ItemImpl, lint: &TokenStream) -> ItemImpl {
    let mut item = item.clone();
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            method.attrs.push(syn::parse_quote!(#[allow(#lint)]));
        }
    }
    item
}
