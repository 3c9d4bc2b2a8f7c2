//! Payload validation: `from_json` and the append-time `validate` of an unchecked payload agree
//! on every input, never panic, and what they accept is one JSON value without a NUL escape.
#![no_main]

use es_core::Payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let checked = Payload::from_json(bytes.to_vec());
    let unchecked = Payload::from_stored(bytes.to_vec()).validate();
    assert_eq!(checked.is_ok(), unchecked.is_ok(), "from_json and validate must agree");
    if let Ok(payload) = checked {
        let value = payload.to_value().expect("an accepted payload parses");
        // Serializing the parsed value again is accepted too (no NUL, finite numbers).
        let again = Payload::from_value(&value).expect("a parsed payload serializes again");
        assert_eq!(again.to_value().expect("parses"), value);
        let _ = format!("{payload:?}");
    }
});
