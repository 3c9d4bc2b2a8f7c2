//! What every macro shares: the attribute symbols, the error collector, attribute parsing and the
//! naming rules.

pub(crate) mod attr;
pub(crate) mod ctxt;
pub(crate) mod names;
pub(crate) mod symbol;
