//! Decoding and upcasting stored events: any type name, schema version and payload bytes give a
//! value or a typed `DecodeError`, never a panic.
#![no_main]

use es_core::{Event, Payload};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

use es_core::__private::serde_json::{Value, json};
use es_core::upcast::UpcastError;

/// v1 stored `{"name": …}`; v2 `{"owner": …, "tier": <u8>}`.
fn v1_to_v2(mut v1: Value) -> Result<Value, UpcastError> {
    let name = v1
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| UpcastError::new("no name"))?
        .to_owned();
    v1["owner"] = json!(name);
    v1["tier"] = json!(1);
    Ok(v1)
}

#[derive(Debug, Deserialize)]
pub struct OpenedV2 {
    pub owner: String,
    pub tier: u8,
}

impl From<OpenedV2> for Opened {
    fn from(old: OpenedV2) -> Self {
        Opened { owner: old.owner, tier: u32::from(old.tier), score: 0.5 }
    }
}

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(name = "account.opened", version = 3, upcast(from = 1, with = v1_to_v2), upcast(from = 2, type = OpenedV2))]
pub struct Opened {
    pub owner: String,
    pub tier: u32,
    pub score: f64,
}

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(name = "account.deposited")]
pub struct Deposited {
    pub cents: i64,
    pub note: Option<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Event)]
pub enum AccountEvent {
    Opened(Opened),
    Deposited(Deposited),
}

fuzz_target!(|input: (&str, u32, &[u8])| {
    let (event_type, schema_version, bytes) = input;
    let payload = Payload::from_stored(bytes.to_vec());
    if let Ok(event) = AccountEvent::from_stored(event_type, schema_version, &payload) {
        // What decodes encodes again, and reads back as the same stored type.
        if let Ok(data) = event.to_event_data() {
            let again = AccountEvent::from_stored(
                data.event_type.as_str(),
                data.schema_version,
                &data.payload,
            );
            assert!(again.is_ok(), "a value this code wrote must read back: {again:?}");
        }
    }
    let _ = Opened::from_stored(event_type, schema_version, &payload);
});
