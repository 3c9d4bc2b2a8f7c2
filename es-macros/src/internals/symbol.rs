//! Every attribute and key the macros read, named once: parsing compares against these, and the
//! "expected one of" lists of error messages are built from them.

use std::fmt;

use syn::{Ident, Path};

/// An attribute or key name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Symbol(&'static str);

// Attributes.
pub(crate) const EVENT: Symbol = Symbol("event");
pub(crate) const PII: Symbol = Symbol("pii");
pub(crate) const AGGREGATE: Symbol = Symbol("aggregate");
pub(crate) const COMMANDS: Symbol = Symbol("commands");
pub(crate) const PROJECTION: Symbol = Symbol("projection");
pub(crate) const UPCAST: Symbol = Symbol("upcast");
pub(crate) const SNAPSHOT: Symbol = Symbol("snapshot");

// Keys.
pub(crate) const NAME: Symbol = Symbol("name");
pub(crate) const VERSION: Symbol = Symbol("version");
pub(crate) const CRATE: Symbol = Symbol("crate");
pub(crate) const FROM: Symbol = Symbol("from");
pub(crate) const WITH: Symbol = Symbol("with");
pub(crate) const TYPE: Symbol = Symbol("type");
pub(crate) const SUBJECT: Symbol = Symbol("subject");
pub(crate) const STREAM: Symbol = Symbol("stream");
pub(crate) const ERROR: Symbol = Symbol("error");
pub(crate) const COMMAND: Symbol = Symbol("command");
pub(crate) const EVERY: Symbol = Symbol("every");

impl Symbol {
    /// `` `a`, `b`, `c` ``: the keys an attribute takes, for "expected one of" messages.
    pub(crate) fn list(symbols: &[Symbol]) -> String {
        symbols.iter().map(|symbol| format!("`{symbol}`")).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<Symbol> for Ident {
    fn eq(&self, symbol: &Symbol) -> bool {
        self == symbol.0
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, symbol: &Symbol) -> bool {
        self.is_ident(symbol.0)
    }
}
