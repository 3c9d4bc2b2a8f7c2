//! The stored form of example events: a change that would break stored data (a renamed field, a
//! changed type name or version) fails here before it reaches a database.
#![allow(clippy::unwrap_used, missing_docs)]

use es_core::{Event, EventVariant};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.opened", version = 2)]
pub struct AccountOpened {
    pub owner: String,
    #[pii(subject = "owner")]
    pub email: String,
    pub overdraft_limit: Option<i64>,
}

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
pub struct Deposited {
    pub amount: i64,
    pub currency: String,
}

#[derive(Event)]
pub enum AccountEvent {
    Opened(AccountOpened),
    Deposited(Deposited),
}

fn stored(event: &impl Event) -> String {
    let data = event.to_event_data().unwrap();
    format!("{} v{}: {}", data.event_type, data.schema_version, data.payload.as_str())
}

#[test]
fn account_opened() {
    let opened = AccountOpened {
        owner: "ada".into(),
        email: "ada@example.com".into(),
        overdraft_limit: None,
    };
    insta::assert_snapshot!(stored(&opened), @r#"account.opened v2: {"owner":"ada","email":"ada@example.com","overdraft_limit":null}"#);
    insta::assert_snapshot!(stored(&AccountEvent::Opened(opened)), @r#"account.opened v2: {"owner":"ada","email":"ada@example.com","overdraft_limit":null}"#);
}

#[test]
fn deposited() {
    let deposited = Deposited { amount: 1_050, currency: "EUR".into() };
    insta::assert_snapshot!(stored(&AccountEvent::Deposited(deposited)), @r#"account.deposited v1: {"amount":1050,"currency":"EUR"}"#);
}

#[test]
fn type_registry() {
    let registry: Vec<String> = AccountEvent::TYPES
        .iter()
        .map(|info| {
            format!(
                "{} v{} pii={:?}",
                info.name,
                info.version,
                info.pii.iter().map(|p| (p.field, p.subject)).collect::<Vec<_>>()
            )
        })
        .collect();
    insta::assert_debug_snapshot!(registry, @r#"
    [
        "account.opened v2 pii=[(\"email\", \"owner\")]",
        "account.deposited v1 pii=[]",
    ]
    "#);
    assert_eq!(Deposited::INFO.name, "account.deposited");
}
