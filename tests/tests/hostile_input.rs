//! Input that must be refused before it becomes a permanent poison event (issue 11), on both
//! backends: a non-finite float in an event, a payload PostgreSQL cannot store, an idempotency key
//! reused with another command.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use es_core::repository::{CommandOptions, Repository, RepositoryError};
use es_core::{
    Aggregate, Apply, EncodeError, Event, EventStore, IdempotencyKey, PayloadError, StoreError,
    StreamId, TenantId, commands,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "sensor.measured")]
pub struct Measured {
    pub celsius: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Event)]
pub enum SensorEvent {
    Measured(Measured),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SensorError {}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(name = "sensor", event = SensorEvent, error = SensorError)]
pub struct Sensor {
    readings: u64,
    last: f64,
}

#[derive(Clone, Debug, Hash)]
pub struct Measure {
    pub celsius_bits: u64,
    pub label: String,
}

#[commands]
impl Sensor {
    pub fn measure(&self, command: Measure) -> Result<Measured, SensorError> {
        Ok(Measured { celsius: f64::from_bits(command.celsius_bits), label: command.label })
    }
}

impl Apply<SensorEvent> for Sensor {
    fn apply(&mut self, event: &SensorEvent) {
        let SensorEvent::Measured(measured) = event;
        self.readings += 1;
        self.last = measured.celsius;
    }
}

fn sensor(id: &str) -> StreamId {
    StreamId::in_category(Sensor::NAME, id).unwrap()
}

fn measure(celsius: f64, label: &str) -> Measure {
    Measure { celsius_bits: celsius.to_bits(), label: label.to_owned() }
}

// ---------------------------------------------------------------- test bodies, for any backend

/// NaN and the infinities are refused at encode time with a typed error naming the field; nothing
/// is written, and the stream still loads.
async fn non_finite_floats_are_refused_and_write_nothing<S: EventStore>(store: S) {
    let sensors = Repository::<Sensor, _>::new(store.clone());
    let id = sensor("s1");
    sensors.execute(&id, measure(21.5, "ok"), CommandOptions::default()).await.unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let refused = sensors.execute(&id, measure(bad, "bad"), CommandOptions::default()).await;
        match refused {
            Err(RepositoryError::Encode(EncodeError::Payload(PayloadError::NonFiniteFloat {
                path,
            }))) => assert_eq!(path, "celsius"),
            other => panic!("{bad} must be refused as a non-finite float, got {other:?}"),
        }
    }
    assert_eq!(store.stream_version(&id).await.unwrap(), 1, "nothing was written");
    let loaded = sensors.load(&id).await.unwrap();
    assert_eq!((loaded.state.readings, loaded.state.last), (1, 21.5), "the stream still loads");
}

/// A string the store cannot keep (a NUL character) is refused as a typed payload error before
/// the append, on both backends alike.
async fn nul_characters_are_refused_and_write_nothing<S: EventStore>(store: S) {
    let sensors = Repository::<Sensor, _>::new(store.clone());
    let id = sensor("s2");
    let refused = sensors.execute(&id, measure(1.0, "a\0b"), CommandOptions::default()).await;
    assert!(
        matches!(
            refused,
            Err(RepositoryError::Encode(EncodeError::Payload(PayloadError::NulCharacter { .. })))
        ),
        "{refused:?}"
    );
    assert_eq!(store.stream_version(&id).await.unwrap(), 0);
}

/// An idempotency key reused with another command on the same stream is a conflict, not a replay
/// of the first command's result; the same command with the same key is a replay.
async fn a_key_reused_with_another_command_is_a_conflict<S: EventStore>(store: S) {
    let sensors = Repository::<Sensor, _>::new(store.clone());
    let id = sensor("s3");
    let key = IdempotencyKey::new("measure-1").unwrap();
    let with_key = || CommandOptions::default().idempotency_key(key.clone());
    let first = sensors.execute(&id, measure(1.0, "first"), with_key()).await.unwrap();
    let replay = sensors.execute(&id, measure(1.0, "first"), with_key()).await.unwrap();
    assert!(replay.replayed, "the same command with the same key is a replay");
    assert_eq!(replay.appended, first.appended);
    let refused = sensors.execute(&id, measure(2.0, "second"), with_key()).await;
    match refused {
        Err(RepositoryError::Store(StoreError::IdempotencyConflict {
            key: k,
            original_stream_id,
            ..
        })) => {
            assert_eq!((k, original_stream_id), (key.clone(), id.clone()));
        }
        other => panic!("another command with a used key must conflict, got {other:?}"),
    }
    assert_eq!(store.stream_version(&id).await.unwrap(), 1, "nothing more was written");
}

// ---------------------------------------------------------------- backends

fn tenant() -> TenantId {
    TenantId::new("hostile").unwrap()
}

tests::on_both_backends!(
    tenant: tenant();
    non_finite_floats_are_refused_and_write_nothing,
    nul_characters_are_refused_and_write_nothing,
    a_key_reused_with_another_command_is_a_conflict,
);
