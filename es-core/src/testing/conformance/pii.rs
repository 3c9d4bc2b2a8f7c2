//! Personal data ([`PersonalData`], [`KeyStore`](crate::pii::KeyStore)): `#[pii]` fields sealed at
//! rest and opened on every read, forgetting that redacts everywhere at once and only once, keys
//! scoped to their tenant, a wrong master key that fails loudly, rotation that touches no event.

use std::future::Future;
use std::sync::Arc;

use futures_util::TryStreamExt;
use serde_json::json;

use super::fixtures::{event_type, read_all, read_stream, stream, tenant};
use crate::pii::{KeyProvider, MasterKeys, PersonalData, PiiError, SubjectForgotten};
use crate::snapshot::{Snapshot, SnapshotStore};
use crate::{
    AppendOptions, EventData, EventStore, ExpectedVersion, IdempotencyKey, MultiTenantStore,
    Payload, PiiField, PiiSubject, StoreError, TenantId,
};

/// What the personal-data cases need of a backend beyond the store: the same data seen with other
/// master keys, and every text it keeps, to search for plaintext.
pub trait PiiBackend: MultiTenantStore<Store: PersonalData + SnapshotStore> {
    /// The same data (events, keys, snapshots) through another key provider.
    #[must_use]
    fn reopen_with(&self, provider: Arc<dyn KeyProvider>) -> Self;

    /// Every text the backend keeps for `tenant`, as stored: event payloads and metadata,
    /// snapshots, idempotency records, outbox messages, dead letters, keys, the audit trail.
    fn stored_text(&self, tenant: &TenantId) -> impl Future<Output = String> + Send;

    /// The payloads of the tenant's events as stored (sealed), in position order.
    fn stored_payloads(&self, tenant: &TenantId) -> impl Future<Output = Vec<String>> + Send;
}

const FIELDS: &[PiiField] = &[
    PiiField { field: "email", subject: PiiSubject::Field("customer") },
    PiiField { field: "name", subject: PiiSubject::Stream },
];

/// A `test.registered` event: `email` belongs to `customer`, `name` to the stream.
fn registered(customer: &str, name: &str, email: &str) -> EventData {
    let payload = json!({ "customer": customer, "name": name, "email": email, "plan": "gold" });
    EventData::new(event_type("test.registered"), Payload::from_value(&payload).expect("payload"))
        .with_pii(FIELDS)
}

async fn append<S: EventStore>(
    store: &S,
    stream_name: &str,
    events: Vec<EventData>,
) -> Result<crate::AppendResult, StoreError> {
    store.append(&stream(stream_name), ExpectedVersion::Any, events, AppendOptions::default()).await
}

fn payloads(events: &[crate::RecordedEvent]) -> Vec<serde_json::Value> {
    events.iter().map(|e| e.payload.to_value().expect("JSON")).collect()
}

fn redacted() -> serde_json::Value {
    json!({ "$redacted": true })
}

/// Sealed fields never reach storage in plain text, and every read (stream, global log, replay)
/// returns them as written; other fields and events are untouched.
pub async fn personal_data_is_sealed_at_rest_and_opened_on_read<B: PiiBackend>(backend: B) {
    let tenant = tenant("pii-seal");
    let store = backend.tenant(tenant.clone());
    let written = registered("cust-1", "Ada Lovelace", "ada@example.com");
    let plain = written.payload.to_value().expect("JSON");
    append(&store, "member-1", vec![written, super::fixtures::numbered(1)]).await.expect("append");

    let text = backend.stored_text(&tenant).await;
    for secret in ["Ada Lovelace", "ada@example.com"] {
        assert!(!text.contains(secret), "{secret:?} is stored in plain text");
    }
    assert!(text.contains("cust-1") && text.contains("gold"), "other fields are stored as written");

    let events = read_stream(&store, &stream("member-1")).await;
    assert_eq!(payloads(&events)[0], plain);
    assert_eq!(payloads(&events)[1], json!({ "n": 1 }));
    assert_eq!(payloads(&read_all(&store).await)[0], plain);
    let replayed: Vec<_> =
        store.replay_stream(&stream("member-1"), 1).try_concat().await.expect("replay");
    assert_eq!(replayed[0].payload.to_value().expect("JSON"), plain);
    let log: Vec<_> = store
        .replay_all(crate::ReadAllOptions::from_beginning())
        .try_concat()
        .await
        .expect("replay_all");
    assert_eq!(log[0].payload.to_value().expect("JSON"), plain);
}

/// Forgetting a subject redacts its fields in every read at once, leaves other subjects alone,
/// removes snapshots of the streams holding its data, appends `es.subject_forgotten`, writes one
/// audit record, refuses new personal data of the subject, and is idempotent.
pub async fn forgetting_redacts_once_and_for_all<B: PiiBackend>(backend: B) {
    let store = backend.tenant(tenant("pii-forget"));
    append(&store, "member-1", vec![registered("cust-1", "Ada", "ada@example.com")])
        .await
        .expect("append");
    append(&store, "member-2", vec![registered("cust-2", "Grace", "grace@example.com")])
        .await
        .expect("append");
    let first = read_stream(&store, &stream("member-1")).await;
    let snapshot = Snapshot::new(
        "member",
        stream("member-1"),
        1,
        first[0].event_id,
        1,
        Payload::from_value(&json!({"name": "Ada"})).expect("state"),
    );
    store.save_snapshot(snapshot).await.expect("snapshot");

    let outcome = store.forget("cust-1", "ticket 4711", "operator:7").await.expect("forget");
    assert!(outcome.first_time);
    // The key store keeps the subject's digest (key row, links) and the audit record, no id.
    let text = backend.stored_text(store.tenant()).await;
    assert!(text.contains(&outcome.entry.subject.to_string()), "the key rows are searched");
    assert!(
        text.contains("ticket 4711") && text.contains("operator:7"),
        "the audit trail is searched"
    );
    assert_eq!(
        outcome.snapshots_removed, 1,
        "the snapshot of a stream holding the subject's data goes"
    );
    assert!(store.load_snapshot(&stream("member-1")).await.expect("load").is_none());

    let member1 = payloads(&read_stream(&store, &stream("member-1")).await);
    assert_eq!(member1[0]["email"], redacted());
    assert_eq!(member1[0]["name"], "Ada", "the stream's own subject is not forgotten");
    assert_eq!(member1[0]["customer"], "cust-1");
    let member2 = payloads(&read_stream(&store, &stream("member-2")).await);
    assert_eq!(member2[0]["email"], "grace@example.com");

    // The event for read models, in its own stream; the audit record names the digest only.
    let log = read_all(&store).await;
    let notices: Vec<_> =
        log.iter().filter(|e| e.event_type.as_str() == SubjectForgotten::NAME).collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].stream_id, SubjectForgotten::stream(outcome.entry.subject));
    assert_eq!(notices[0].payload.to_value().expect("JSON"), json!({ "subject": "cust-1" }));
    let trail = store.audit_trail(Some("cust-1"), 10).await.expect("audit");
    assert_eq!(trail, vec![outcome.entry.clone()]);
    assert_eq!((trail[0].actor.as_str(), trail[0].reason.as_str()), ("operator:7", "ticket 4711"));
    assert!(store.is_forgotten("cust-1").await.expect("lookup"));
    assert!(!store.is_forgotten("cust-2").await.expect("lookup"));

    // New personal data of the subject is refused, and nothing is written.
    let refused =
        append(&store, "member-3", vec![registered("cust-1", "Ada", "new@example.com")]).await;
    assert!(
        matches!(refused, Err(StoreError::PersonalData(PiiError::SubjectForgotten { .. }))),
        "{refused:?}"
    );
    assert_eq!(store.stream_version(&stream("member-3")).await.expect("version"), 0);

    // Forgetting again changes nothing.
    // (A snapshot written meanwhile, by a process whose key cache still held the key, goes.)
    let late = Snapshot::new(
        "member",
        stream("member-1"),
        1,
        first[0].event_id,
        1,
        Payload::from_value(&json!({"name": "Ada"})).expect("state"),
    );
    store.save_snapshot(late).await.expect("snapshot");
    let again = store.forget("cust-1", "ticket 4712", "operator:8").await.expect("forget again");
    assert!(!again.first_time);
    assert_eq!(again.snapshots_removed, 1);
    assert!(store.load_snapshot(&stream("member-1")).await.expect("load").is_none());
    assert_eq!(again.entry, outcome.entry);
    assert_eq!(store.audit_trail(None, 10).await.expect("audit").len(), 1);
    assert_eq!(read_all(&store).await.len(), log.len(), "no second notice");

    // A subject that never had data can be forgotten too (and then never gets any).
    assert!(store.forget("cust-never", "ticket 1", "operator:7").await.expect("forget").first_time);
    let refused =
        append(&store, "member-4", vec![registered("cust-never", "X", "x@example.com")]).await;
    assert!(matches!(refused, Err(StoreError::PersonalData(PiiError::SubjectForgotten { .. }))));

    // Bad requests are refused before anything is written.
    for (subject, reason, actor) in
        [("", "r", "a"), ("s", "", "a"), ("s", "r", "a\nb"), ("s", &"r".repeat(501), "a")]
    {
        let bad = store.forget(subject, reason, actor).await;
        assert!(
            matches!(bad, Err(StoreError::PersonalData(PiiError::InvalidRequest(_)))),
            "{bad:?}"
        );
    }
    assert!(!store.is_forgotten("s").await.expect("lookup"));
}

/// Keys belong to their tenant: the same subject id in two tenants has two keys, and forgetting it
/// in one leaves the other readable.
pub async fn personal_data_keys_are_scoped_to_their_tenant<B: PiiBackend>(backend: B) {
    let a = backend.tenant(tenant("pii-a"));
    let b = backend.tenant(tenant("pii-b"));
    append(&a, "member-1", vec![registered("cust-1", "Ada", "ada@a.example")])
        .await
        .expect("append");
    append(&b, "member-1", vec![registered("cust-1", "Ada", "ada@b.example")])
        .await
        .expect("append");
    a.forget("cust-1", "ticket", "operator").await.expect("forget");
    assert_eq!(payloads(&read_stream(&a, &stream("member-1")).await)[0]["email"], redacted());
    assert_eq!(payloads(&read_stream(&b, &stream("member-1")).await)[0]["email"], "ada@b.example");
    assert!(b.audit_trail(None, 10).await.expect("audit").is_empty());
    assert!(!b.is_forgotten("cust-1").await.expect("lookup"));
}

/// A process with the wrong master key (same id, other bytes; or an id it lacks) fails every read
/// of sealed data loudly, and writes nothing for a subject whose key it cannot open.
pub async fn a_wrong_master_key_fails_loudly_and_writes_nothing<B: PiiBackend>(backend: B) {
    let tenant = tenant("pii-wrong");
    let right = backend.reopen_with(Arc::new(MasterKeys::new("k1", [1; 32]).expect("keys")));
    let store = right.tenant(tenant.clone());
    append(&store, "member-1", vec![registered("cust-1", "Ada", "ada@example.com")])
        .await
        .expect("append");

    let impostor = backend
        .reopen_with(Arc::new(MasterKeys::new("k1", [2; 32]).expect("keys")))
        .tenant(tenant.clone());
    let read: Result<Vec<_>, _> = impostor
        .read_stream(&stream("member-1"), crate::ReadStreamOptions::forward())
        .try_collect()
        .await;
    assert!(
        matches!(read, Err(StoreError::PersonalData(PiiError::WrongMasterKey { .. }))),
        "{read:?}"
    );
    let write =
        append(&impostor, "member-1", vec![registered("cust-1", "Ada", "ada2@example.com")]).await;
    assert!(
        matches!(write, Err(StoreError::PersonalData(PiiError::WrongMasterKey { .. }))),
        "{write:?}"
    );
    assert_eq!(
        store.stream_version(&stream("member-1")).await.expect("version"),
        1,
        "nothing written"
    );

    let stranger =
        backend.reopen_with(Arc::new(MasterKeys::new("k9", [1; 32]).expect("keys"))).tenant(tenant);
    let read: Result<Vec<_>, _> =
        stranger.read_all(crate::ReadAllOptions::from_beginning()).try_collect().await;
    assert!(
        matches!(read, Err(StoreError::PersonalData(PiiError::UnknownMasterKey { .. }))),
        "{read:?}"
    );
    let replayed: Result<Vec<_>, _> =
        stranger.replay_all(crate::ReadAllOptions::from_beginning()).try_collect().await;
    assert!(
        matches!(replayed, Err(StoreError::PersonalData(PiiError::UnknownMasterKey { .. }))),
        "{replayed:?}"
    );
}

/// Rotating the master key rewraps every data key and rewrites no event: afterwards the old master
/// key can go.
pub async fn master_key_rotation_rewraps_keys_without_touching_events<B: PiiBackend>(backend: B) {
    let tenant = tenant("pii-rotate");
    let old = backend.reopen_with(Arc::new(MasterKeys::new("old", [1; 32]).expect("keys")));
    for n in 0..3 {
        let customer = format!("cust-{n}");
        append(
            &old.tenant(tenant.clone()),
            &format!("member-{n}"),
            vec![registered(&customer, "Ada", "ada@example.com")],
        )
        .await
        .expect("append");
    }
    let before: Vec<String> = read_all_raw(&backend, &tenant).await;

    let both =
        MasterKeys::new("new", [2; 32]).expect("keys").with_previous("old", [1; 32]).expect("keys");
    let rotating = backend.reopen_with(Arc::new(both));
    let vault = rotating.tenant(tenant.clone()).vault().cloned().expect("a vault");
    // Other tenants' keys may be rotated too (the suite may share a database): at least ours.
    assert!(
        vault.rotate(2).await.expect("rotate") >= 6,
        "two keys per member (stream and customer)"
    );
    assert_eq!(vault.rotate(2).await.expect("rotate again"), 0);

    let new_only = backend
        .reopen_with(Arc::new(MasterKeys::new("new", [2; 32]).expect("keys")))
        .tenant(tenant.clone());
    let events = read_all(&new_only).await;
    assert_eq!(events.len(), 3);
    assert!(
        events.iter().all(|e| e.payload.to_value().expect("JSON")["email"] == "ada@example.com")
    );
    assert_eq!(read_all_raw(&backend, &tenant).await, before, "no event was rewritten");
}

/// An idempotent retry of an append holding personal data replays (the fingerprint is taken
/// before sealing, whose nonces differ every time), and writes nothing twice.
pub async fn a_sealed_append_retried_with_its_key_replays<B: PiiBackend>(backend: B) {
    let store = backend.tenant(tenant("pii-retry"));
    let key = IdempotencyKey::new("register-1").expect("key");
    let event = registered("cust-1", "Ada", "ada@example.com");
    let options = || AppendOptions::default().idempotency_key(key.clone());
    let first = store
        .append(&stream("member-1"), ExpectedVersion::NoStream, vec![event.clone()], options())
        .await
        .expect("append");
    let again = store
        .append(&stream("member-1"), ExpectedVersion::NoStream, vec![event], options())
        .await
        .expect("replay");
    assert_eq!(first, again);
    assert_eq!(read_stream(&store, &stream("member-1")).await.len(), 1);

    // The stored fingerprint is keyed by the subjects' keys: the hash of the plain request (which
    // anyone holding a guess of the e-mail address can compute) is nowhere, and after forgetting
    // nothing can test a guess against the record.
    let plain = crate::AppendRequest::new(
        &stream("member-1"),
        ExpectedVersion::NoStream,
        vec![registered("cust-1", "Ada", "ada@example.com")],
        options(),
    )
    .expect("request")
    .idempotency
    .expect("keyed")
    .1;
    let record = store.idempotency_record(&key).await.expect("record").expect("recorded");
    assert_ne!(record.fingerprint, plain, "the fingerprint of the plain values is not stored");
    let stored = backend.stored_text(&tenant("pii-retry")).await;
    assert!(!stored.contains(&plain.to_string()), "nor its hex anywhere: {stored}");
    // A command pipeline answering a retry from the record compares through the store.
    assert!(store.fingerprint_matches(&record, &plain).await.expect("compared"));
    assert!(store.fingerprint_matches(&record, &record.fingerprint).await.expect("compared"));
    let other = crate::Fingerprint([7; 32]);
    assert!(!store.fingerprint_matches(&record, &other).await.expect("compared"));
    store.forget("cust-1", "ticket-1", "operator").await.expect("forget");
    let after = store.fingerprint_matches(&record, &plain).await;
    assert!(
        matches!(after, Err(StoreError::PersonalData(PiiError::SubjectForgotten { .. }))),
        "nothing can be tested against a forgotten subject's record: {after:?}"
    );
}

/// A publication copying a `#[pii]` value in clear is refused (the outbox and the broker would keep
/// it beyond forgetting); one holding ids only goes out with its event.
pub async fn publishing_personal_data_in_clear_is_refused<B: PiiBackend>(backend: B) {
    use crate::outbox::Publication;
    use crate::{InvalidAppend, Subject};
    let store = backend.tenant(tenant("pii-publish"));
    let event = registered("cust-1", "Ada", "ada@example.com");
    let copied = Publication::new(
        0,
        Subject::new("test.registered").expect("subject"),
        event.payload.as_bytes().to_vec(),
    );
    let refused = store
        .append(
            &stream("member-1"),
            ExpectedVersion::Any,
            vec![event.clone()],
            AppendOptions::default().publish(copied),
        )
        .await;
    assert!(
        matches!(
            &refused,
            Err(StoreError::InvalidAppend {
                reason: InvalidAppend::InvalidPublication { index: 0, .. },
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        store.stream_version(&stream("member-1")).await.expect("version"),
        0,
        "nothing written"
    );
    let ids_only = Publication::new(
        0,
        Subject::new("test.registered").expect("subject"),
        br#"{"customer":"cust-1"}"#.to_vec(),
    );
    store
        .append(
            &stream("member-1"),
            ExpectedVersion::Any,
            vec![event],
            AppendOptions::default().publish(ids_only),
        )
        .await
        .expect("a publication of ids goes out");
}

/// A `#[pii]` field whose subject field is missing or not an id is refused; nothing is written.
pub async fn personal_data_without_a_subject_is_refused<B: PiiBackend>(backend: B) {
    let store = backend.tenant(tenant("pii-bad"));
    for payload in [
        json!({ "name": "Ada", "email": "a@example.com" }),
        json!({ "customer": [1], "name": "Ada", "email": "a@example.com" }),
        json!({ "customer": "", "name": "A", "email": "e" }),
        json!(["not", "an", "object"]),
    ] {
        let event = EventData::new(
            event_type("test.registered"),
            Payload::from_value(&payload).expect("payload"),
        )
        .with_pii(FIELDS);
        let refused = append(&store, "member-1", vec![event]).await;
        assert!(
            matches!(
                refused,
                Err(StoreError::PersonalData(PiiError::InvalidField { index: 0, .. }))
            ),
            "{payload}: {refused:?}"
        );
    }
    assert_eq!(store.stream_version(&stream("member-1")).await.expect("version"), 0);
}

/// The name `"$pii"` marks sealed values: a payload holding it anywhere (as a key or a string,
/// escaped or not), in any event, is refused and nothing of the batch is written. A sealed field
/// whose name needs escapes in JSON reads back as written.
pub async fn the_reserved_name_is_refused_and_odd_field_names_read_back<B: PiiBackend>(backend: B) {
    const ODD: &[PiiField] = &[PiiField { field: "e\"mail", subject: PiiSubject::Stream }];
    let store = backend.tenant(tenant("pii-reserved"));
    let plain = |json: &str| {
        EventData::new(event_type("test.noted"), Payload::from_json(json.to_owned()).expect("json"))
    };
    for hostile in [r#"{"note":{"$pii":"x"}}"#, r#"{"note":["\u0024pii"]}"#, r#"{"\u0024pii":1}"#] {
        let batch = vec![registered("c-1", "Ada", "ada@example.com"), plain(hostile)];
        let refused = append(&store, "member-1", batch).await;
        assert!(
            matches!(
                &refused,
                Err(StoreError::InvalidAppend {
                    reason: crate::InvalidAppend::InvalidPayload { index: 1, .. },
                    ..
                })
            ),
            "{hostile}: {refused:?}"
        );
    }
    assert_eq!(store.stream_version(&stream("member-1")).await.expect("version"), 0);

    let payload = json!({ "a\\": 1, "e\"mail": "ada@example.com", "z": [true] });
    let event = EventData::new(event_type("test.odd"), Payload::from_value(&payload).expect("p"))
        .with_pii(ODD);
    append(&store, "member-2", vec![event]).await.expect("sealed");
    let stored = backend.stored_payloads(&tenant("pii-reserved")).await.join("\n");
    assert!(!stored.contains("ada@example.com"), "sealed at rest: {stored}");
    let read = read_stream(&store, &stream("member-2")).await;
    assert_eq!(payloads(&read), vec![payload]);
}

async fn read_all_raw<B: PiiBackend>(backend: &B, tenant: &TenantId) -> Vec<String> {
    backend.stored_payloads(tenant).await
}
