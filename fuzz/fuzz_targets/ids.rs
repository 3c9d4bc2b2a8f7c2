//! Id parsing: every id type validates any string (and any JSON) with a typed error, never a
//! panic; what is accepted round-trips through serde unchanged.
#![no_main]

use es_core::{EventType, IdempotencyKey, StreamId, TenantId};
use libfuzzer_sys::fuzz_target;

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
) {
    let json = serde_json::to_string(value).expect("an accepted id serializes");
    let back: T = serde_json::from_str(&json).expect("an accepted id deserializes");
    assert_eq!(&back, value);
}

fuzz_target!(|text: &str| {
    if let Ok(id) = StreamId::new(text) {
        assert_eq!(id.as_str(), text);
        round_trip(&id);
    }
    if let Ok(id) = TenantId::new(text) {
        round_trip(&id);
    }
    if let Ok(id) = EventType::new(text) {
        round_trip(&id);
    }
    if let Ok(id) = IdempotencyKey::new(text) {
        round_trip(&id);
    }
    let _ = StreamId::in_category(text, text);
    // The same text as a JSON document: validating deserialization, never a panic.
    let _ = serde_json::from_str::<StreamId>(text);
    let _ = serde_json::from_str::<TenantId>(text);
    let _ = serde_json::from_str::<IdempotencyKey>(text);
});
