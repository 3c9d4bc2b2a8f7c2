//! Opening sealed fields on the way out of a backend's reads, a page at a time.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};

use super::{PiiError, Vault};
use crate::store::{EventStream, ReplayStream};
use crate::{Payload, StoreError, TenantId};

/// Opens the sealed fields of a backend's event stream (see [`Vault::open`]), taking the events a
/// backend has ready (its current page) together, so that a page costs at most one key-store
/// query. Without a vault, an event holding sealed fields fails the read with
/// [`PiiError::NoMasterKey`]: sealed text is never handed out as if it were the value.
pub fn open_events(
    vault: Option<Arc<Vault>>,
    tenant: TenantId,
    events: EventStream,
) -> EventStream {
    Box::pin(
        events
            .ready_chunks(1_024)
            .then(move |chunk| {
                let vault = vault.clone();
                let tenant = tenant.clone();
                async move {
                    let (mut ok, error): (Vec<_>, Option<StoreError>) = split(chunk);
                    open_all(
                        vault.as_deref(),
                        &tenant,
                        ok.iter_mut().map(|e| &mut e.payload).collect(),
                    )
                    .await?;
                    Ok::<_, StoreError>((ok, error))
                }
            })
            .flat_map(|result| {
                let items: Vec<Result<_, StoreError>> = match result {
                    Err(error) => vec![Err(error)],
                    Ok((events, error)) => {
                        events.into_iter().map(Ok).chain(error.map(Err)).collect()
                    }
                };
                stream::iter(items)
            }),
    )
}

/// Opens the sealed fields of a backend's replay pages (see [`open_events`]).
pub fn open_replay(
    vault: Option<Arc<Vault>>,
    tenant: TenantId,
    pages: ReplayStream,
) -> ReplayStream {
    Box::pin(pages.and_then(move |mut page| {
        let vault = vault.clone();
        let tenant = tenant.clone();
        async move {
            open_all(vault.as_deref(), &tenant, page.iter_mut().map(|e| &mut e.payload).collect())
                .await?;
            Ok(page)
        }
    }))
}

/// Opens payloads with the vault, or refuses sealed ones without it.
pub async fn open_all(
    vault: Option<&Vault>,
    tenant: &TenantId,
    payloads: Vec<&mut Payload>,
) -> Result<(), StoreError> {
    match vault {
        Some(vault) => vault.open(tenant, payloads).await,
        None if payloads.iter().any(|p| super::envelope::contains_sealed(p.as_bytes())) => {
            Err(PiiError::NoMasterKey { action: "open" }.into())
        }
        None => Ok(()),
    }
}

/// The events before the first error, and that error (a stream ends at its first error).
fn split<T>(chunk: Vec<Result<T, StoreError>>) -> (Vec<T>, Option<StoreError>) {
    let mut ok = Vec::with_capacity(chunk.len());
    for item in chunk {
        match item {
            Ok(item) => ok.push(item),
            Err(error) => return (ok, Some(error)),
        }
    }
    (ok, None)
}

/// Seals the `#[pii]` fields of an append (after its fingerprint was taken from the plain
/// events, so a retry with the same idempotency key still matches). Without a vault, a batch
/// holding personal data is refused with [`PiiError::NoMasterKey`]: it is never stored in plain
/// text. A payload holding the name `"$pii"` (as a key or a string, in any event) is refused:
/// the name marks sealed values, and reads find them by it.
pub async fn seal_request(
    vault: Option<&Vault>,
    tenant: &TenantId,
    request: &mut crate::AppendRequest,
) -> Result<(), StoreError> {
    for (index, event) in request.events.iter().enumerate() {
        if super::envelope::holds_reserved_name(event.payload.as_bytes()) {
            return Err(StoreError::InvalidAppend {
                stream_id: request.stream_id.clone(),
                reason: crate::InvalidAppend::InvalidPayload {
                    index,
                    reason: "the name \"$pii\" is reserved for sealed personal data".to_owned(),
                },
            });
        }
    }
    if request.events.iter().all(|event| event.pii.is_empty()) {
        return Ok(());
    }
    refuse_published_personal_data(request)?;
    let vault = vault.ok_or(PiiError::NoMasterKey { action: "seal" })?;
    vault.seal_request(tenant, request).await
}

/// A publication that copies a `#[pii]` field's value in clear (publishing the event's payload
/// as it is, most likely) is refused: the outbox and the broker would keep what forgetting must
/// reach. Strings of fewer than 4 bytes are not searched (too many false alarms).
fn refuse_published_personal_data(request: &crate::AppendRequest) -> Result<(), StoreError> {
    for (index, publication) in request.publications.iter().enumerate() {
        let Some(event) = request.events.get(publication.event) else { continue };
        if event.pii.is_empty() {
            continue;
        }
        let Ok(Some(object)) = super::envelope::Object::parse(event.payload.as_bytes()) else {
            continue;
        };
        for pii in event.pii {
            let Some(value) = object.get(pii.field) else { continue };
            let Ok(text) = serde_json::from_str::<String>(value.get()) else { continue };
            if text.len() >= 4
                && memchr::memmem::find(&publication.payload, text.as_bytes()).is_some()
            {
                return Err(StoreError::InvalidAppend {
                    stream_id: request.stream_id.clone(),
                    reason: crate::InvalidAppend::InvalidPublication {
                        index,
                        reason: format!(
                            "it holds the personal-data field `{}` of event #{} in clear; publish ids and outcomes, never #[pii] values",
                            pii.field, publication.event
                        ),
                    },
                });
            }
        }
    }
    Ok(())
}
