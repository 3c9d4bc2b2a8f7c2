//! A minimal bank on the in-memory store: open accounts, move money, read the log back.
//!
//! `cargo run -p examples --bin bank`
//!
//! This first version works with the store contract directly (events in, events out). The
//! aggregate, projection and HTTP layers grow on top of it as the framework does.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use es_core::{
    AppendOptions, EventData, EventStore, EventType, ExpectedVersion, IdempotencyKey,
    MultiTenantStore, ReadAllOptions, StoreError, StreamId, TenantId,
};
use es_memory::MemoryStore;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Amount {
    cents: i64,
}

fn event(name: &str, cents: i64) -> Result<EventData, Box<dyn std::error::Error>> {
    Ok(EventData::json(EventType::new(name)?, &Amount { cents })?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = MemoryStore::new();
    let bank = backend.tenant(TenantId::new("demo-bank")?);

    let alice = StreamId::in_category("account", "alice")?;
    let bob = StreamId::in_category("account", "bob")?;
    for account in [&alice, &bob] {
        bank.append(
            account,
            ExpectedVersion::NoStream,
            vec![event("account.opened", 0)?],
            AppendOptions::default(),
        )
        .await?;
    }
    bank.append(
        &alice,
        ExpectedVersion::Exact(1),
        vec![event("account.deposited", 10_000)?],
        AppendOptions::default(),
    )
    .await?;

    // A withdrawal retried with the same idempotency key is applied once.
    let key = IdempotencyKey::new("withdraw-req-1")?;
    for _attempt in 0..3 {
        let written = bank
            .append(
                &alice,
                ExpectedVersion::Exact(2),
                vec![event("account.withdrawn", 2_500)?],
                AppendOptions::default().idempotency_key(key.clone()),
            )
            .await?;
        println!("withdrawal recorded at version {}", written.last_version);
    }

    // A writer with a stale view of the account is refused.
    let stale = bank
        .append(
            &alice,
            ExpectedVersion::Exact(1),
            vec![event("account.withdrawn", 99_999)?],
            AppendOptions::default(),
        )
        .await;
    if let Err(StoreError::VersionConflict { expected, actual, .. }) = stale {
        println!("stale write refused: expected {expected}, account is at version {actual}");
    }

    let mut balances = BTreeMap::<String, i64>::new();
    let log: Vec<_> = bank.read_all(ReadAllOptions::from_beginning()).try_collect().await?;
    for recorded in &log {
        let Amount { cents } = recorded.deserialize_payload()?;
        let sign = if recorded.event_type.as_str() == "account.withdrawn" { -1 } else { 1 };
        *balances.entry(recorded.stream_id.to_string()).or_default() += sign * cents;
        println!(
            "#{:<3} {:<16} v{} {:<18} {:>8}",
            recorded.position,
            recorded.stream_id,
            recorded.stream_version,
            recorded.event_type,
            cents
        );
    }
    for (account, cents) in balances {
        println!("{account}: {}.{:02}", cents / 100, cents % 100);
    }
    Ok(())
}
