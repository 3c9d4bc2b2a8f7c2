//! Snapshot decoding: any stored fields (state bytes, versions, checksum) give a verdict
//! (intact or not, state readable or not), never a panic.
#![no_main]

use es_core::snapshot::Snapshot;
use es_core::{EventId, Payload, StreamId};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize, serde::Serialize, PartialEq)]
struct Account {
    open: bool,
    owner: String,
    balance: i64,
    history: Vec<(u64, i64)>,
}

fuzz_target!(|input: (u64, u32, [u8; 16], [u8; 32], &[u8])| {
    let (version, schema_version, event_id, checksum, state) = input;
    let stream = StreamId::new("account-1").expect("valid");
    let event_id = EventId::from(uuid::Uuid::from_bytes(event_id));
    let stored = Snapshot {
        checksum,
        ..Snapshot::new(
            "account",
            stream,
            version,
            event_id,
            schema_version,
            Payload::from_stored(state.to_vec()),
        )
    };
    let _ = stored.is_intact();
    if let Ok(account) = stored.state.deserialize::<Account>() {
        // A readable state re-serializes and checksums consistently, unless it holds a NUL
        // character, which no store can keep: that is refused with a typed error (the repository
        // then skips the snapshot), never a panic.
        let payload = match Payload::from_value(&account) {
            Ok(payload) => payload,
            Err(es_core::PayloadError::NulCharacter { .. }) => {
                assert!(account.owner.contains('\0'), "only the owner can hold a NUL");
                return;
            }
            Err(other) => panic!("a readable state must serialize: {other}"),
        };
        let fresh = Snapshot::new(
            "account",
            stored.stream_id.clone(),
            version,
            event_id,
            schema_version,
            payload,
        );
        assert!(fresh.is_intact());
    }
});
