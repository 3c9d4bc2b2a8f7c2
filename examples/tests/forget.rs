//! Forgetting an account's owner, end to end on both backends: the live view drops the owner at
//! once, a rebuild reads the sealed fields as redacted, nothing in the store (events, snapshots,
//! outbox, views' tables, keys, audit) holds the plaintext, and forgetting twice is harmless.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::time::Duration;

use es::repository::Repository;
use es::{MultiTenantStore, Pii, StreamId, TenantId};
use examples::bank::account::Account;
use examples::bank::{Bank, BankStore};

const NAME: &str = "Ada Lovelace";
const EMAIL: &str = "ada.lovelace@example.com";

async fn owner_is_forgotten_everywhere<S, F>(store: S, stored_text: impl Fn() -> F)
where
    S: BankStore,
    F: Future<Output = String>,
{
    let bank = Bank::start(store.clone()).await;
    bank.open("a", NAME, Some(EMAIL), None).await.unwrap();
    bank.open("b", "Bob Builder", Some("bob@example.com"), None).await.unwrap();
    // A retried open (its command holds personal data) replays, also after the keyed fingerprint.
    let first = bank.open("c", "Carol", Some("carol@example.com"), Some("open-c")).await.unwrap();
    let again = bank.open("c", "Carol", Some("carol@example.com"), Some("open-c")).await.unwrap();
    assert!(again.replayed && !first.replayed, "{first:?} {again:?}");
    assert_eq!((first.version, first.position), (again.version, again.position));
    let other = bank.open("c", "Carol", Some("other@example.com"), Some("open-c")).await;
    assert!(other.is_err(), "the key with another command is refused: {other:?}");
    // Past the account's snapshot interval (50): a snapshot of a state holding the name.
    for _ in 0..55 {
        bank.deposit("a", 10, None).await.unwrap();
    }
    bank.request_transfer("t1", "a", "b", 100, None).await.unwrap();
    bank.settle(Duration::from_secs(30)).await.unwrap();
    let before = bank.account("a", None).await.unwrap();
    assert_eq!((before.owner.as_deref(), before.email.as_deref()), (Some(NAME), Some(EMAIL)));

    let outcome = bank.forget("a", "ticket GDPR-17", "operator:7").await.unwrap();
    assert!(outcome.first_time);
    bank.settle(Duration::from_secs(30)).await.unwrap();

    // The live view dropped its copies on the `es.subject_forgotten` event.
    let view = bank.account("a", None).await.unwrap();
    assert!(view.forgotten);
    assert_eq!((view.owner, view.email, view.balance), (None, None, 550 - 100));
    let bob = bank.account("b", None).await.unwrap();
    assert_eq!(bob.owner.as_deref(), Some("Bob Builder"));

    // A rebuild reads the sealed fields as redacted; the aggregate too.
    bank.rebuild("balances").await.unwrap();
    let rebuilt = bank.account("a", None).await.unwrap();
    assert!(rebuilt.forgotten && rebuilt.owner.is_none() && rebuilt.email.is_none());
    assert_eq!(rebuilt.balance, 450);
    let accounts = Repository::<Account, _>::new(store.clone());
    let account = accounts.load(&StreamId::new("account-a").unwrap()).await.unwrap();
    assert_eq!(account.state.owner, Some(Pii::Redacted));
    assert_eq!(account.state.balance, 450, "the rest of the history is whole");

    // The account still works: its later events hold no personal data.
    bank.deposit("a", 5, None).await.unwrap();

    let text = stored_text().await;
    for secret in [NAME, EMAIL] {
        assert!(!text.contains(secret), "{secret:?} is still stored");
    }
    // The search sees the stored data (the stream id, the transfer id are stored as they are).
    assert!(text.contains("account-a") && text.contains("t1"), "the search found no stored data");

    let again = bank.forget("a", "ticket GDPR-18", "operator:8").await.unwrap();
    assert!(!again.first_time);
    assert_eq!(again.entry, outcome.entry);
    let trail = store.audit_trail(None, 10).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].reason, "ticket GDPR-17");
    assert!(matches!(
        bank.forget("nobody", "t", "o").await,
        Err(examples::bank::BankError::NotFound(_))
    ));
    bank.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    let backend = es::memory::MemoryStore::new();
    let tenant = TenantId::default();
    let store = backend.tenant(tenant.clone());
    owner_is_forgotten_everywhere(store, || {
        let text = backend.stored_text(&tenant);
        async move { text }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let fresh = es::postgres::testing::FreshSchema::new().await;
    owner_is_forgotten_everywhere(fresh.default_tenant(), || fresh.stored_text()).await;
}
