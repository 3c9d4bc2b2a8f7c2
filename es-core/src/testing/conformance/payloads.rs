//! The envelope, payload sizes and character sets, identifier validation.

use std::collections::BTreeMap;

use chrono::{SubsecRound, Utc};
use serde_json::json;
use uuid::Uuid;

use super::fixtures::{append, event_type, read_all, read_stream, scoped, stream};
use crate::{
    EventData, EventId, EventMetadata, EventStore, EventType, ExpectedVersion, IdError,
    IdempotencyKey, MultiTenantStore, Payload, StreamId, TenantId,
};

/// Every field of the envelope reads back as written.
pub async fn envelope_round_trips<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = StreamId::in_category("account", "42").expect("valid id");
    let (correlation, causation) = (Uuid::now_v7(), Uuid::now_v7());
    let metadata = EventMetadata::default()
        .with_correlation_id(correlation)
        .with_causation_id(causation)
        .with_actor("user:7")
        .with_custom("ip", "127.0.0.1")
        .with_custom("trace", "00-abc-01");
    let payload = json!({ "owner": "Ada", "amount": 12_345, "tags": ["a", "b"], "nested": { "ok": true, "none": null } });
    let id = EventId::new();
    let written = EventData::json(event_type("account.opened"), &payload)
        .expect("payload")
        .with_event_id(id)
        .with_schema_version(3)
        .with_metadata(metadata.clone());
    let plain = EventData::json(event_type("account.noted"), &json!("plain")).expect("payload");

    let before = Utc::now().trunc_subsecs(6);
    let result = append(&store, &s, ExpectedVersion::NoStream, vec![written, plain]).await;
    let after = Utc::now();

    let events = read_stream(&store, &s).await;
    let event = &events[0];
    assert_eq!(event.event_id, id);
    assert_eq!(event.tenant, *store.tenant());
    assert_eq!(event.stream_id, s);
    assert_eq!(event.stream_version, 1);
    assert_eq!(event.position, result.first_position);
    assert_eq!(event.event_type.as_str(), "account.opened");
    assert_eq!(event.schema_version, 3);
    assert_eq!(event.payload.to_value().expect("JSON"), payload, "payloads compare as JSON values");
    assert_eq!(*event.metadata, metadata);
    assert!(
        before <= event.recorded_at && event.recorded_at <= after,
        "recorded_at {} not within the append",
        event.recorded_at
    );
    assert_eq!(
        event.recorded_at,
        event.recorded_at.trunc_subsecs(6),
        "timestamps are kept to the microsecond"
    );
    assert!(events[1].metadata.is_empty());
    assert_eq!(events[1].schema_version, 1);
    assert_eq!(
        read_all(&store).await,
        events,
        "read_all returns the same envelopes as read_stream"
    );
}

/// Large payloads (a 4 MiB event, a batch of 200 events of 16 KiB) are stored whole.
pub async fn large_payloads_round_trip<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let big = json!({ "blob": "x".repeat(4 << 20), "end": "marker" });
    let s = stream("big-1");
    append(
        &store,
        &s,
        ExpectedVersion::NoStream,
        vec![EventData::json(event_type("test.big"), &big).expect("payload")],
    )
    .await;
    let many: Vec<serde_json::Value> =
        (0..200).map(|n| json!({ "n": n, "fill": format!("{n:0>16384}") })).collect();
    let batch = many
        .iter()
        .map(|value| EventData::json(event_type("test.fill"), value).expect("payload"))
        .collect();
    append(&store, &stream("many-1"), ExpectedVersion::NoStream, batch).await;

    let events = read_stream(&store, &s).await;
    assert_eq!(events[0].payload.to_value().expect("JSON"), big);
    let filled = read_stream(&store, &stream("many-1")).await;
    let values: Vec<serde_json::Value> =
        filled.iter().map(|event| event.payload.to_value().expect("JSON")).collect();
    assert_eq!(values, many);
}

/// Unicode in payloads, stream ids, metadata and keys survives the store unchanged.
pub async fn unicode_payloads_and_ids_round_trip<B: MultiTenantStore>(backend: B) {
    let store = scoped(&backend, "a");
    let s = stream("компания-東京-😀-e\u{301}");
    let text = "Grüße, 世界! 🎉 עברית مرحبا e\u{301} \"quoted\" back\\slash \\u0000 as text \u{1F600}\u{200D}\u{1F4BB} \u{FEFF}";
    let payload = json!({ "text": text, "ключ": "значение", "emoji🔑": ["🍕", "🦀"] });
    let metadata = EventMetadata::default().with_actor("Zoë").with_custom("città", "Zürich");
    let event = EventData::json(event_type("test.unicode"), &payload)
        .expect("payload")
        .with_metadata(metadata.clone());
    let key = IdempotencyKey::new("ключ-🔑").expect("valid key");
    store
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![event],
            crate::AppendOptions::default().idempotency_key(key.clone()),
        )
        .await
        .expect("append");
    let events = read_stream(&store, &s).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].stream_id.as_str(), s.as_str());
    assert_eq!(events[0].payload.to_value().expect("JSON"), payload);
    assert_eq!(*events[0].metadata, metadata);
    assert_eq!(
        store.idempotency_record(&key).await.expect("lookup").map(|record| record.stream_id),
        Some(s)
    );
}

/// Malformed identifiers and payloads are refused when built, with the rule they broke; ids that
/// arrive through serde are checked too, so none reaches a backend.
pub async fn invalid_ids_are_rejected<B: MultiTenantStore>(backend: B) {
    assert!(matches!(TenantId::new(""), Err(IdError::Empty { .. })));
    assert!(matches!(TenantId::new("acme corp"), Err(IdError::InvalidChar { found: ' ', .. })));
    assert!(matches!(
        TenantId::new("a".repeat(65)),
        Err(IdError::TooLong { len: 65, max: 64, .. })
    ));
    assert!(matches!(StreamId::new(""), Err(IdError::Empty { .. })));
    assert!(matches!(
        StreamId::new("order\n1"),
        Err(IdError::InvalidChar { found: '\n', at: 5, .. })
    ));
    assert!(matches!(StreamId::new("nul\0"), Err(IdError::InvalidChar { .. })));
    assert!(matches!(StreamId::new("x".repeat(257)), Err(IdError::TooLong { .. })));
    assert!(StreamId::new("x".repeat(256)).is_ok());
    assert!(StreamId::in_category("bad-category", "1").is_err());
    assert!(matches!(EventType::new("account opened"), Err(IdError::InvalidChar { .. })));
    assert!(matches!(EventType::new(""), Err(IdError::Empty { .. })));
    assert!(matches!(IdempotencyKey::new("key\t1"), Err(IdError::InvalidChar { .. })));
    assert!(serde_json::from_str::<StreamId>("\"\"").is_err());
    assert!(serde_json::from_str::<TenantId>("\"a b\"").is_err());
    assert!(serde_json::from_str::<EventType>("\"ok.type\"").is_ok());
    assert!(Payload::from_json(&b"{\"unterminated\": "[..]).is_err());
    assert!(Payload::from_value(&BTreeMap::from([("nul", "a\0b")])).is_err());

    // The messages say what is allowed.
    let message = TenantId::new("acme corp").expect_err("invalid").to_string();
    assert!(message.contains("tenant id") && message.contains("ASCII letters"), "{message}");

    // Nothing invalid can be written: the store still works and holds nothing.
    let store = scoped(&backend, "a");
    assert!(read_all(&store).await.is_empty());
}

/// A payload or metadata that some backend cannot store is refused by every backend, with the same
/// typed error and nothing written: text that is not JSON or holds a `\u0000` escape (even when
/// wrapped unchecked with `Payload::from_stored`), and metadata holding a NUL character.
pub async fn unstorable_payloads_and_metadata_are_refused_everywhere<B: MultiTenantStore>(
    backend: B,
) {
    use crate::{AppendOptions, InvalidAppend, StoreError};
    let store = scoped(&backend, "a");
    let s = stream("order-1");
    let ty = event_type("test.raw");
    let bad_payloads: [&[u8]; 4] =
        [b"{not json", br#"{"name":"a\u0000b"}"#, b"{} {}", br#"["\ud800"]"#];
    for text in bad_payloads {
        let event = EventData::new(ty.clone(), Payload::from_stored(text.to_vec()));
        let good = EventData::new(ty.clone(), Payload::from_json(&b"{}"[..]).expect("valid"));
        let refused = store
            .append(&s, crate::ExpectedVersion::Any, vec![good, event], AppendOptions::default())
            .await;
        assert!(
            matches!(
                &refused,
                Err(StoreError::InvalidAppend {
                    reason: InvalidAppend::InvalidPayload { index: 1, .. },
                    ..
                })
            ),
            "{:?} must be refused as an invalid payload, got {refused:?}",
            String::from_utf8_lossy(text)
        );
    }
    for metadata in [
        EventMetadata::default().with_actor("a\0b"),
        EventMetadata::default().with_custom("k", "v\0"),
        EventMetadata::default().with_custom("k\0", "v"),
    ] {
        let event = EventData::new(ty.clone(), Payload::from_json(&b"{}"[..]).expect("valid"))
            .with_metadata(metadata);
        let refused = store
            .append(&s, crate::ExpectedVersion::Any, vec![event], AppendOptions::default())
            .await;
        assert!(
            matches!(
                &refused,
                Err(StoreError::InvalidAppend {
                    reason: InvalidAppend::InvalidMetadata { index: 0, .. },
                    ..
                })
            ),
            "metadata with a NUL must be refused, got {refused:?}"
        );
    }
    assert!(read_all(&store).await.is_empty(), "nothing was written");
    // A payload read back from a store (unchecked) appends again when it is valid.
    let valid = EventData::new(ty, Payload::from_stored(&b"{\"n\":1}"[..]));
    store
        .append(&s, crate::ExpectedVersion::Any, vec![valid], AppendOptions::default())
        .await
        .expect("a valid stored payload appends");
}
