//! The stored form of example events: a change that would break stored data (a renamed field, a
//! changed type name or version) fails here before it reaches a database.
#![allow(clippy::unwrap_used, missing_docs)]

use es_core::{
    AppendOptions, Event, EventStore, EventVariant, ExpectedVersion, MultiTenantStore, Pii,
    PiiSubject, StreamId, TenantId,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.opened", version = 2)]
pub struct AccountOpened {
    pub owner: String,
    #[pii(subject = "owner")]
    pub email: Pii<String>,
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

/// What a store keeps: the `#[pii]` field sealed as `{"$pii":"1.<subject digest>.<sealed>"}` (the
/// nonce and ciphertext are random, so the snapshot shows their length), the other fields as
/// serialized, byte for byte.
async fn sealed(event: &impl Event) -> String {
    let backend = es_memory::MemoryStore::new();
    let tenant = TenantId::new("acme").unwrap();
    let stream = StreamId::new("account-1").unwrap();
    let data = event.to_event_data().unwrap();
    let store = backend.tenant(tenant.clone());
    store
        .append(&stream, ExpectedVersion::Any, vec![data], AppendOptions::default())
        .await
        .unwrap();
    let text = backend.stored_payloads(&tenant).remove(0);
    assert!(!text.contains("ada@example.com"));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let envelope = value["email"]["$pii"].as_str().unwrap();
    let sealed = envelope.rsplit('.').next().unwrap();
    let shown = format!("<{} bytes of nonce, ciphertext and tag>", sealed.len() * 3 / 4);
    text.replace(sealed, &shown)
}

#[tokio::test]
async fn account_opened() {
    let opened = AccountOpened {
        owner: "ada".into(),
        email: Pii::new("ada@example.com".into()),
        overdraft_limit: None,
    };
    // What the type serializes, before the store seals it:
    insta::assert_snapshot!(stored(&opened), @r#"account.opened v2: {"owner":"ada","email":"ada@example.com","overdraft_limit":null}"#);
    // What the store keeps:
    insta::assert_snapshot!(sealed(&AccountEvent::Opened(opened)).await, @r#"{"owner":"ada","email":{"$pii":"1.dc89d122a28636377b09d202d5928de7.<45 bytes of nonce, ciphertext and tag>"},"overdraft_limit":null}"#);
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
                info.pii
                    .iter()
                    .map(|p| match p.subject {
                        PiiSubject::Field(subject) => (p.field, subject),
                        PiiSubject::Stream => (p.field, "<stream>"),
                    })
                    .collect::<Vec<_>>()
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
