//! `#[commands]`: one method per command → the command enum, its `From` impls and the dispatch.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ImplItem, ItemImpl, ReturnType, Type};

use crate::attr::{Slot, krate, unknown};
use crate::check;
use crate::ctxt::Ctxt;

struct Command<'a> {
    method: &'a syn::Ident,
    variant: syn::Ident,
    ty: &'a Type,
}

/// The impl block, the generated code for every command method that is well-formed, and the
/// errors of the others: one mistake costs one error, not a cascade of "cannot find type
/// `AccountCommand`" wherever the aggregate is used.
pub(crate) fn expand(args: &TokenStream, item: &ItemImpl) -> TokenStream {
    let (generated, errors) = generate(args, item);
    let errors = errors.map(syn::Error::into_compile_error);
    // Commands are taken by value by contract, whether or not a method consumes its own.
    let item = super::with_allow(item, &quote!(clippy::needless_pass_by_value));
    quote! { #item #generated #errors }
}

fn generate(args: &TokenStream, item: &ItemImpl) -> (TokenStream, Option<syn::Error>) {
    let mut ctxt = Ctxt::default();
    let mut krate_slot = Slot::<syn::Path>::new("commands", "crate");
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let path = crate::attr::crate_path(&meta)?;
            krate_slot.set(&mut ctxt, &meta, path);
        } else {
            unknown(
                &mut ctxt,
                &meta,
                "commands",
                "`crate` (the enum is named after the type: `AccountCommand` for `Account`)",
            )?;
        }
        Ok(())
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args.clone()) {
        ctxt.push(error);
    }
    let krate = krate(krate_slot.take());
    if let Some((_, path, _)) = &item.trait_ {
        ctxt.error(
            path,
            "`#[commands]` goes on an inherent `impl` block of command methods, not a trait impl",
        );
    }
    // Code for a generic block or a trait impl would only add errors of its own.
    let mut emit = item.trait_.is_none();
    if !item.generics.params.is_empty() {
        ctxt.error(&item.generics, "`#[commands]` does not support generic impl blocks");
        emit = false;
    }
    let self_ident = match &*item.self_ty {
        Type::Path(self_ty) => self_ty.path.segments.last().map(|segment| &segment.ident),
        _ => None,
    };
    let Some(self_ident) = self_ident else {
        ctxt.error(&item.self_ty, "`#[commands]` goes on `impl AggregateType { … }`");
        return (TokenStream::new(), ctxt.finish().err());
    };

    let mut commands = Vec::new();
    let mut seen = BTreeSet::new();
    let mut visibility = None;
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else { continue };
        let signature = &method.sig;
        if let Some(token) = &signature.asyncness {
            ctxt.error(
                token,
                "command methods are not async: deciding is pure, the repository does the I/O",
            );
            continue;
        }
        if !signature.generics.params.is_empty() {
            ctxt.error(&signature.generics, "command methods cannot be generic");
            continue;
        }
        let mut inputs = signature.inputs.iter();
        match inputs.next() {
            Some(FnArg::Receiver(receiver))
                if receiver.reference.is_some() && receiver.mutability.is_none() => {}
            Some(FnArg::Receiver(receiver)) => {
                ctxt.error(receiver, "command methods take `&self`: deciding does not change the aggregate (events do, in `Apply`)");
                continue;
            }
            _ => {
                ctxt.error(&signature.ident, "command methods take `&self` and the command: `fn open(&self, command: Open) -> Result<…, …>`");
                continue;
            }
        }
        let (Some(FnArg::Typed(arg)), None) = (inputs.next(), inputs.next()) else {
            ctxt.error(&signature.inputs, "command methods take exactly one command after `&self`");
            continue;
        };
        let ty = &*arg.ty;
        if !returns_result(&signature.output) {
            ctxt.error(&signature.output, "command methods return `Result<events, error>` (events: an event, a `Vec` or `Option` of them, or `()`)");
            continue;
        }
        if !seen.insert(quote!(#ty).to_string()) {
            ctxt.error(
                ty,
                "two command methods take this command type; each command type maps to one method",
            );
            continue;
        }
        visibility.get_or_insert(&method.vis);
        let variant = format_ident!(
            "{}",
            check::pascal_case(&signature.ident.to_string()),
            span = signature.ident.span()
        );
        commands.push(Command { method: &signature.ident, variant, ty });
    }
    if commands.is_empty()
        && item.items.iter().all(|impl_item| !matches!(impl_item, ImplItem::Fn(_)))
    {
        ctxt.error(&item.self_ty, "`#[commands]` found no command methods in this block");
    }
    let errors = ctxt.finish().err();
    if !emit {
        return (TokenStream::new(), errors);
    }

    let enum_ident = format_ident!("{}Command", self_ident);
    let visibility = visibility.cloned().unwrap_or(syn::Visibility::Inherited);
    let variants: Vec<_> = commands.iter().map(|command| &command.variant).collect();
    let types: Vec<_> = commands.iter().map(|command| command.ty).collect();
    let methods: Vec<_> = commands.iter().map(|command| command.method).collect();
    let doc = format!(
        "The commands of [`{self_ident}`], one variant per command method (generated by `#[commands]`). \
         `Clone`, because a command is decided again after a version conflict; `Hash`, because a \
         command run with an idempotency key is fingerprinted, so that the key reused with another \
         command is refused instead of answered with the first command's result."
    );
    let self_ty = &item.self_ty;
    let generated = quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::hash::Hash)]
        #visibility enum #enum_ident {
            #(
                #[allow(missing_docs)]
                #variants(#types),
            )*
        }

        #(
            #[automatically_derived]
            impl ::core::convert::From<#types> for #enum_ident {
                fn from(command: #types) -> Self {
                    Self::#variants(command)
                }
            }
        )*

        #[automatically_derived]
        impl #krate::HandleCommand<#enum_ident> for #self_ty {
            fn handle_command(
                &self,
                command: #enum_ident,
            ) -> ::core::result::Result<
                ::std::vec::Vec<<Self as #krate::Aggregate>::Event>,
                <Self as #krate::Aggregate>::Error,
            > {
                match command {
                    #(
                        #enum_ident::#variants(command) => match Self::#methods(self, command) {
                            ::core::result::Result::Ok(decision) => ::core::result::Result::Ok(
                                #krate::Decision::<<Self as #krate::Aggregate>::Event>::into_events(decision),
                            ),
                            ::core::result::Result::Err(error) => ::core::result::Result::Err(::core::convert::From::from(error)),
                        },
                    )*
                }
            }
        }
    };
    (generated, errors)
}

fn returns_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else { return false };
    let Type::Path(path) = &**ty else { return false };
    path.path.segments.last().is_some_and(|segment| segment.ident == "Result")
}
