//! A domain written only with the derives: versioned events with upcasters (JSON and typed),
//! personal-data fields, an aggregate with commands, a projection; run on es-memory.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use es_core::upcast::UpcastError;
use es_core::{
    Aggregate, AppendOptions, Apply, DecodeError, Event, EventStore, EventVariant, ExpectedVersion,
    MultiTenantStore, Payload, Pii, Projection, ProjectionError, ReadAllOptions, RecordedEvent,
    StreamId, TenantId, commands, projection,
};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Version 3. Version 1 stored `{"name": "Ada Lovelace"}` (a JSON upcaster splits it); version 2
/// stored `{"first": …, "last": …}` (a typed upcaster adds the email).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "account.opened", version = 3, upcast(from = 1, with = split_name), upcast(from = 2, type = OpenedV2))]
pub struct AccountOpened {
    pub owner: String,
    #[pii(subject = "owner")]
    pub email: Pii<String>,
    pub first: String,
    pub last: String,
}

#[derive(Deserialize)]
pub struct OpenedV2 {
    first: String,
    last: String,
}

impl From<OpenedV2> for AccountOpened {
    fn from(v2: OpenedV2) -> Self {
        Self {
            owner: format!("{}-{}", v2.first, v2.last).to_lowercase(),
            email: Pii::new(String::new()),
            first: v2.first,
            last: v2.last,
        }
    }
}

fn split_name(mut v1: Value) -> Result<Value, UpcastError> {
    let name = v1["name"].as_str().ok_or_else(|| UpcastError::new("`name` is missing"))?.to_owned();
    let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
    v1["first"] = json!(first);
    v1["last"] = json!(last);
    Ok(v1)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
pub struct Deposited {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "account.withdrawn")]
pub struct Withdrawn {
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Event)]
pub enum AccountEvent {
    Opened(AccountOpened),
    Deposited(Deposited),
    Withdrawn(Withdrawn),
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("insufficient funds: balance {balance}, asked {asked}")]
    InsufficientFunds { balance: i64, asked: i64 },
}

#[derive(Debug, Default, Clone, Aggregate)]
#[aggregate(name = "account", event = AccountEvent, error = AccountError, snapshot(every = 200, version = 1))]
pub struct Account {
    open: bool,
    balance: i64,
}

#[derive(Clone, Hash)]
pub struct Open {
    pub owner: String,
    pub email: String,
}
#[derive(Clone, Hash)]
pub struct Deposit {
    pub amount: i64,
}
#[derive(Clone, Hash)]
pub struct Withdraw {
    pub amount: i64,
}

#[commands]
impl Account {
    pub fn open(&self, command: Open) -> Result<AccountOpened, AccountError> {
        if self.open {
            return Err(AccountError::AlreadyOpen);
        }
        Ok(AccountOpened {
            owner: command.owner,
            email: Pii::new(command.email),
            first: String::new(),
            last: String::new(),
        })
    }

    pub fn deposit(&self, command: Deposit) -> Result<Deposited, AccountError> {
        if !self.open {
            return Err(AccountError::NotOpen);
        }
        Ok(Deposited { amount: command.amount })
    }

    pub fn withdraw(&self, command: Withdraw) -> Result<Vec<AccountEvent>, AccountError> {
        if command.amount > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                asked: command.amount,
            });
        }
        Ok(vec![Withdrawn { amount: command.amount }.into()])
    }
}

impl Apply<AccountEvent> for Account {
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened(_) => self.open = true,
            AccountEvent::Deposited(deposited) => self.balance += deposited.amount,
            AccountEvent::Withdrawn(withdrawn) => self.balance -= withdrawn.amount,
        }
    }
}

#[derive(Default)]
pub struct Balances {
    total: i64,
    seen: Vec<String>,
}

#[projection(name = "balances")]
impl Balances {
    async fn on_deposited(
        &mut self,
        event: &Deposited,
        meta: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.total += event.amount;
        self.seen.push(meta.stream_id.to_string());
        Ok(())
    }

    async fn on_withdrawn(&mut self, event: &Withdrawn) -> Result<(), ProjectionError> {
        self.total -= event.amount;
        Ok(())
    }
}

/// Owners by name, from the opened events only: no handler takes the envelope, so the runner
/// reads payloads only.
#[derive(Default)]
pub struct Owners {
    names: Vec<(String, String, String)>,
}

#[projection(name = "owners")]
impl Owners {
    async fn on_opened(&mut self, event: &AccountOpened) -> Result<(), ProjectionError> {
        self.names.push((event.owner.clone(), event.first.clone(), event.last.clone()));
        Ok(())
    }
}

fn fold(events: &[AccountEvent]) -> Account {
    let mut account = Account::default();
    for event in events {
        account.apply(event);
    }
    account
}

#[test]
fn names_versions_and_pii_come_from_the_attributes() {
    assert_eq!(AccountOpened::INFO.name, "account.opened");
    assert_eq!(AccountOpened::INFO.version, 3);
    assert_eq!(
        AccountOpened::INFO.pii,
        &[es_core::PiiField { field: "email", subject: es_core::PiiSubject::Field("owner") }]
    );
    assert_eq!(Deposited::INFO.version, 1);
    let names: Vec<_> = AccountEvent::TYPES.iter().map(|info| info.name).collect();
    assert_eq!(names, ["account.opened", "account.deposited", "account.withdrawn"]);
    assert_eq!(Account::NAME, "account");
    assert_eq!(Account::SNAPSHOT, es_core::SnapshotPolicy { every: Some(200), version: 1 });
    assert_eq!(<Balances as Projection>::NAME, "balances");
    let handled: Vec<_> = Balances::EVENT_TYPES.iter().map(|info| info.name).collect();
    assert_eq!(handled, ["account.deposited", "account.withdrawn"]);
}

#[test]
fn commands_decide_and_domain_errors_come_back_unchanged() {
    let account = Account::default();
    let events = account
        .handle(Open { owner: "ada".into(), email: "ada@example.com".into() }.into())
        .unwrap();
    assert!(matches!(events.as_slice(), [AccountEvent::Opened(_)]));
    let account = fold(&events);
    assert_eq!(
        account.handle(Open { owner: "x".into(), email: String::new() }.into()).unwrap_err(),
        AccountError::AlreadyOpen
    );
    let deposited = account.handle(Deposit { amount: 10 }.into()).unwrap();
    let account = fold(&[events, deposited].concat());
    assert_eq!(
        account.handle(Withdraw { amount: 11 }.into()).unwrap_err(),
        AccountError::InsufficientFunds { balance: 10, asked: 11 }
    );
    assert_eq!(
        account.handle(Withdraw { amount: 4 }.into()).unwrap(),
        vec![AccountEvent::Withdrawn(Withdrawn { amount: 4 })]
    );
}

#[test]
fn stored_v1_and_v2_read_as_v3() {
    // v1 → (JSON upcaster) → v2 shape → (typed upcaster through `OpenedV2`) → v3.
    let v1 = Payload::from_value(&json!({ "name": "Ada Lovelace" })).unwrap();
    let from_v1 = AccountOpened::from_stored("account.opened", 1, &v1).unwrap();
    assert_eq!(
        from_v1,
        AccountOpened {
            owner: "ada-lovelace".into(),
            email: Pii::new(String::new()),
            first: "Ada".into(),
            last: "Lovelace".into()
        }
    );

    let v2 = Payload::from_value(&json!({ "first": "Grace", "last": "Hopper" })).unwrap();
    let from_v2 = AccountEvent::from_stored("account.opened", 2, &v2).unwrap();
    assert_eq!(
        from_v2,
        AccountEvent::Opened(AccountOpened {
            owner: "grace-hopper".into(),
            email: Pii::new(String::new()),
            first: "Grace".into(),
            last: "Hopper".into()
        })
    );
    let v3 = Payload::from_value(&from_v1).unwrap();
    assert_eq!(AccountOpened::from_stored("account.opened", 3, &v3).unwrap(), from_v1);
}

#[test]
fn unreadable_events_are_typed_errors_never_panics() {
    let payload = Payload::from_value(&json!({ "amount": 1 })).unwrap();
    assert!(matches!(
        AccountEvent::from_stored("account.closed", 1, &payload),
        Err(DecodeError::UnknownType { .. })
    ));
    assert!(matches!(
        Deposited::from_stored("account.deposited", 2, &payload),
        Err(DecodeError::NewerVersion { stored: 2, current: 1, .. })
    ));
    assert!(matches!(
        Deposited::from_stored("account.deposited", 0, &payload),
        Err(DecodeError::NoUpcaster { .. })
    ));
    let no_name = Payload::from_value(&json!({ "owner": "x", "email": "" })).unwrap();
    assert!(matches!(
        AccountOpened::from_stored("account.opened", 1, &no_name),
        Err(DecodeError::Upcast { from: 1, .. })
    ));
    let wrong = Payload::from_value(&json!({ "amount": "ten" })).unwrap();
    let error = Deposited::from_stored("account.deposited", 1, &wrong).unwrap_err();
    assert!(matches!(error, DecodeError::Deserialize { .. }));
    assert!(error.to_string().contains("account.deposited"), "{error}");
    let unknown = AccountEvent::from_stored("account.closed", 1, &payload).unwrap_err().to_string();
    assert!(
        unknown.contains("\"account.opened\", \"account.deposited\", \"account.withdrawn\""),
        "{unknown}"
    );
}

#[tokio::test]
async fn the_domain_runs_on_es_memory_and_reads_older_versions() {
    let store = es_memory::MemoryStore::new().tenant(TenantId::default());
    let stream = StreamId::in_category(Account::NAME, "ada").unwrap();

    // A v1 event written by old code, then events written by this code.
    let old = es_core::EventData::json(
        es_core::EventType::new("account.opened").unwrap(),
        &json!({ "owner": "ada", "email": "a@x", "name": "Ada Lovelace" }),
    )
    .unwrap()
    .with_schema_version(1);
    store
        .append(&stream, ExpectedVersion::NoStream, vec![old], AppendOptions::default())
        .await
        .unwrap();
    let mut account = Account::default();
    let mut version = 0;
    for recorded in store
        .read_stream(&stream, es_core::ReadStreamOptions::forward())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
    {
        account.apply(&AccountEvent::decode(&recorded).unwrap());
        version = recorded.stream_version;
    }
    let decided = account.handle(Deposit { amount: 25 }.into()).unwrap();
    let data = decided.iter().map(|event| event.to_event_data().unwrap()).collect();
    store
        .append(&stream, ExpectedVersion::Exact(version), data, AppendOptions::default())
        .await
        .unwrap();

    let log: Vec<RecordedEvent> = store
        .read_all(ReadAllOptions::from_beginning().event_types(Balances::event_types()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "the store filters by the projection's types");
    let mut balances = Balances::default();
    for recorded in &log {
        balances.handle(recorded).await.unwrap();
    }
    assert_eq!(balances.total, 25);
    assert_eq!(balances.seen, ["account-ada"]);
    let events: Vec<AccountEvent> = store
        .read_stream(&stream, es_core::ReadStreamOptions::forward())
        .map_ok(|recorded| AccountEvent::decode(&recorded).unwrap())
        .try_collect()
        .await
        .unwrap();
    assert!(
        matches!(&events[0], AccountEvent::Opened(opened) if opened.first == "Ada" && opened.last == "Lovelace")
    );
    assert_eq!(fold(&events).balance, 25);
}

/// A projection of payloads only reads every stored version upcast to the current one, like one
/// that takes the envelope: the runner's payload read goes through the same upcaster chain.
#[tokio::test]
async fn a_projection_of_payloads_reads_older_versions_upcast() {
    use es_core::projection::{ProjectionRunner, Reads};
    assert_eq!(Owners::READS, Reads::Payload, "no handler takes the envelope");
    assert_eq!(Balances::READS, Reads::Envelope, "a handler takes the envelope");
    let store = es_memory::MemoryStore::new().tenant(TenantId::default());
    let opened = es_core::EventType::new("account.opened").unwrap();
    let v1 = es_core::EventData::json(opened.clone(), &json!({ "name": "Ada Lovelace" }))
        .unwrap()
        .with_schema_version(1);
    let v2 = es_core::EventData::json(opened, &json!({ "first": "Grace", "last": "Hopper" }))
        .unwrap()
        .with_schema_version(2);
    let v3 = AccountOpened {
        owner: "alan".to_owned(),
        email: Pii::new("alan@example.com".to_owned()),
        first: "Alan".to_owned(),
        last: "Turing".to_owned(),
    }
    .to_event_data()
    .unwrap();
    for (name, event) in [("ada", v1), ("grace", v2), ("alan", v3)] {
        let stream = StreamId::in_category(Account::NAME, name).unwrap();
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event], AppendOptions::default())
            .await
            .unwrap();
    }
    let mut runner = ProjectionRunner::new(Owners::default(), store);
    assert_eq!(runner.catch_up().await.unwrap().handled, 3);
    assert_eq!(
        runner.projection().names,
        [
            ("ada-lovelace".to_owned(), "Ada".to_owned(), "Lovelace".to_owned()),
            ("grace-hopper".to_owned(), "Grace".to_owned(), "Hopper".to_owned()),
            ("alan".to_owned(), "Alan".to_owned(), "Turing".to_owned()),
        ]
    );
}
