//! The command methods of an aggregate's `impl` block.

use std::collections::BTreeSet;

use quote::{format_ident, quote};
use syn::{FnArg, Ident, ImplItem, ItemImpl, Path, ReturnType, Type, Visibility};

use crate::internals::attr::krate;
use crate::internals::ctxt::Ctxt;
use crate::internals::names;

/// The block's well-formed command methods.
pub(crate) struct Model {
    /// The aggregate's type name: the enum is `{self_ident}Command`.
    pub(crate) self_ident: Ident,
    pub(crate) self_ty: Type,
    /// The first command method's visibility, given to the enum.
    pub(crate) visibility: Visibility,
    pub(crate) commands: Vec<Command>,
    pub(crate) krate: Path,
}

/// `fn withdraw(&self, command: Withdraw) -> Result<…, …>`: variant `Withdraw(Withdraw)`.
pub(crate) struct Command {
    pub(crate) method: Ident,
    pub(crate) variant: Ident,
    pub(crate) ty: Type,
}

pub(crate) fn build(ctxt: &mut Ctxt, item: &ItemImpl, krate_path: Option<Path>) -> Option<Model> {
    let mut shaped = true;
    if let Some((_, path, _)) = &item.trait_ {
        ctxt.error(
            path,
            "`#[commands]` goes on an inherent `impl` block of command methods, not a trait impl",
        );
        shaped = false;
    }
    if !item.generics.params.is_empty() {
        ctxt.error(&item.generics, "`#[commands]` does not support generic impl blocks");
        shaped = false;
    }
    let self_ident = match &*item.self_ty {
        Type::Path(self_ty) => self_ty.path.segments.last().map(|segment| segment.ident.clone()),
        _ => None,
    };
    let Some(self_ident) = self_ident else {
        ctxt.error(&item.self_ty, "`#[commands]` goes on `impl AggregateType { … }`");
        return None;
    };
    let mut commands = Vec::new();
    let mut seen = BTreeSet::new();
    let mut visibility = None;
    for impl_item in &item.items {
        let ImplItem::Fn(method) = impl_item else { continue };
        let Some(command) = command(ctxt, &method.sig) else { continue };
        let ty = &command.ty;
        if !seen.insert(quote!(#ty).to_string()) {
            ctxt.error(
                ty,
                "two command methods take this command type; each command type maps to one method",
            );
            continue;
        }
        visibility.get_or_insert_with(|| method.vis.clone());
        commands.push(command);
    }
    if commands.is_empty()
        && item.items.iter().all(|impl_item| !matches!(impl_item, ImplItem::Fn(_)))
    {
        ctxt.error(&item.self_ty, "`#[commands]` found no command methods in this block");
    }
    shaped.then(|| Model {
        self_ident,
        self_ty: (*item.self_ty).clone(),
        visibility: visibility.unwrap_or(Visibility::Inherited),
        commands,
        krate: krate(krate_path),
    })
}

/// The command of a well-formed method; the error of another.
fn command(ctxt: &mut Ctxt, signature: &syn::Signature) -> Option<Command> {
    if let Some(token) = &signature.asyncness {
        ctxt.error(
            token,
            "command methods are not async: deciding is pure, the repository does the I/O",
        );
        return None;
    }
    if !signature.generics.params.is_empty() {
        ctxt.error(&signature.generics, "command methods cannot be generic");
        return None;
    }
    let mut inputs = signature.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(receiver))
            if receiver.reference.is_some() && receiver.mutability.is_none() => {}
        Some(FnArg::Receiver(receiver)) => {
            ctxt.error(receiver, "command methods take `&self`: deciding does not change the aggregate (events do, in `Apply`)");
            return None;
        }
        _ => {
            ctxt.error(&signature.ident, "command methods take `&self` and the command: `fn open(&self, command: Open) -> Result<…, …>`");
            return None;
        }
    }
    let (Some(FnArg::Typed(arg)), None) = (inputs.next(), inputs.next()) else {
        ctxt.error(&signature.inputs, "command methods take exactly one command after `&self`");
        return None;
    };
    if !returns_result(&signature.output) {
        ctxt.error(&signature.output, "command methods return `Result<events, error>` (events: an event, a `Vec` or `Option` of them, or `()`)");
        return None;
    }
    let variant = format_ident!(
        "{}",
        names::pascal_case(&signature.ident.to_string()),
        span = signature.ident.span()
    );
    Some(Command { method: signature.ident.clone(), variant, ty: (*arg.ty).clone() })
}

fn returns_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else { return false };
    let Type::Path(path) = &**ty else { return false };
    path.path.segments.last().is_some_and(|segment| segment.ident == "Result")
}
