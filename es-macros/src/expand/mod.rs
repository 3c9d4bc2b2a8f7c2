//! Parse, check, emit: one module per macro.

pub(crate) mod aggregate;
pub(crate) mod commands;
pub(crate) mod event;
pub(crate) mod projection;
