//! The one way every macro runs: attributes as written → a model with every required part →
//! checks → code; beside any error, a fallback that keeps one mistake from cascading.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ImplItem, ItemImpl};

use crate::internals::ctxt::Ctxt;

/// One macro, in layers.
pub(crate) trait Macro {
    /// What the macro is applied to.
    type Input;
    /// The attributes as written: every key optional, each checked for duplicates and unknowns.
    type Attrs;
    /// What the code is generated from: its required parts are present, not `Option`.
    type Model;

    /// Whether the model's code is emitted beside errors too: for a block of methods, the model
    /// holds the well-formed ones, and their code keeps a mistake in one method from becoming an
    /// error wherever the type is used.
    const EMIT_BESIDE_ERRORS: bool = false;

    /// Parses the attributes.
    fn attrs(ctxt: &mut Ctxt, input: &Self::Input) -> Self::Attrs;

    /// Builds the model; `None` (with an error) when a required part is missing.
    fn model(ctxt: &mut Ctxt, input: &Self::Input, attrs: &Self::Attrs) -> Option<Self::Model>;

    /// Checks the rules a well-formed model must also follow (names, chains, duplicates).
    fn check(ctxt: &mut Ctxt, model: &Self::Model);

    /// The generated code.
    fn emit(model: &Self::Model) -> TokenStream;

    /// What is emitted beside errors instead of [`emit`](Self::emit): impls whose bodies never
    /// run, so that uses of the type elsewhere do not add errors of their own. Empty where no
    /// impl could be valid (a generic type, a union).
    fn fallback(input: &Self::Input, attrs: &Self::Attrs) -> TokenStream;

    /// The input as it stays in the source: the item of an attribute macro, nothing for a derive.
    fn keep(_input: &Self::Input) -> TokenStream {
        TokenStream::new()
    }
}

/// Runs `M` on `input`: its code, or its errors (all of them at once) and its fallback.
pub(crate) fn expand_with<M: Macro>(input: &M::Input) -> TokenStream {
    let mut ctxt = Ctxt::default();
    let attrs = M::attrs(&mut ctxt, input);
    let model = M::model(&mut ctxt, input, &attrs);
    if let Some(model) = &model {
        M::check(&mut ctxt, model);
    }
    let kept = M::keep(input);
    match (ctxt.finish(), model) {
        (Ok(()), Some(model)) => {
            let code = M::emit(&model);
            quote! { #kept #code }
        }
        (Err(errors), Some(model)) if M::EMIT_BESIDE_ERRORS => {
            let errors = errors.into_compile_error();
            let code = M::emit(&model);
            quote! { #kept #code #errors }
        }
        (result, _) => {
            let errors = result
                .err()
                .unwrap_or_else(|| {
                    // Every `model` that returns `None` reports why; this is a bug of the macro.
                    syn::Error::new(
                        proc_macro2::Span::call_site(),
                        "es-macros found nothing to generate and no error to report; please report this",
                    )
                })
                .into_compile_error();
            let fallback = M::fallback(input, &attrs);
            quote! { #kept #fallback #errors }
        }
    }
}

/// An attribute macro's input: its arguments and the `impl` block it is on.
pub(crate) struct AttributeInput {
    pub(crate) args: TokenStream,
    pub(crate) item: ItemImpl,
}

/// `const _: () = { … };`: generated impls and their helper items stay out of the user's
/// namespace.
pub(crate) fn in_const(tokens: &TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        const _: () = {
            #tokens
        };
    }
}

/// The impl block with `#[allow(lint)]` on each of its methods.
pub(crate) fn with_allow(item: &ItemImpl, lint: &TokenStream) -> TokenStream {
    let mut item = item.clone();
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            method.attrs.push(syn::parse_quote!(#[allow(#lint)]));
        }
    }
    quote!(#item)
}
