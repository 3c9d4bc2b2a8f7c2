use es_core::Event;

#[derive(Event)]
pub struct Deposited { amount: i64 }

fn main() {}
