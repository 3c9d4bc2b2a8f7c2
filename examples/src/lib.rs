//! Runnable applications built on the framework: the bank service (`bank`) and its admin CLI
//! (`bank-admin`).

pub mod bank;
