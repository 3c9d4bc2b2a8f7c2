//! Running a command: decide on the current state, append with its version, retry on conflict.

use std::hash::Hash;

use tracing::Instrument;

use super::fingerprint;
use super::snapshots::SnapshotsOf;
use super::{CommandOptions, CommandOutcome, Loaded, Repository, RepositoryError};
use crate::outbox::Publication;
use crate::{
    Aggregate, AppendOptions, Event, EventStore, ExpectedVersion, Fingerprint, IdempotencyKey,
    IdempotencyRecord, StoreError, StreamId,
};

impl<A, S, N> Repository<A, S, N>
where
    A: Aggregate,
    S: EventStore,
    N: SnapshotsOf<A>,
{
    /// Runs a command: load, decide, append with `Exact(version)`; on a version conflict, reload
    /// and decide again (up to [`RepositoryOptions::max_attempts`](super::RepositoryOptions::max_attempts), with jittered exponential
    /// backoff). A domain error comes back unchanged and appends nothing. With an idempotency key,
    /// a command that already ran returns its recorded result without deciding again.
    pub async fn execute(
        &self,
        stream_id: &StreamId,
        command: impl Into<A::Command>,
        options: CommandOptions,
    ) -> Result<CommandOutcome, RepositoryError<A::Error>>
    where
        A::Command: Clone + Hash,
    {
        let span = tracing::info_span!(
            "es.command",
            aggregate = A::NAME,
            stream = %stream_id,
            version = tracing::field::Empty,
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let command = command.into();
        async move {
            let together = options.idempotency_key.is_none()
                && self.options.take_turns
                && self.options.decide_together > 1;
            // Boxed: the pipeline's future is deep (load, decide, append, retries, a group's
            // worker), and an application's own futures around it (an HTTP handler, a spawned
            // process) would otherwise reach the compiler's query depth limit.
            let result = if together {
                Box::pin(self.run_together(stream_id, command, options)).await
            } else {
                Box::pin(self.run(stream_id, command, &options)).await
            };
            let span = tracing::Span::current();
            let outcome = match &result {
                Ok(outcome) => {
                    span.record("version", outcome.version);
                    span.record("attempts", outcome.attempts);
                    if outcome.replayed { "replayed" } else { "ok" }
                }
                Err(RepositoryError::Domain(_)) => "refused",
                Err(RepositoryError::Contention { .. }) => "contention",
                Err(_) => "failed",
            };
            span.record("outcome", outcome);
            metrics::counter!("es_commands_total", "aggregate" => A::NAME, "outcome" => outcome)
                .increment(1);
            result
        }
        .instrument(span)
        .await
    }

    /// The state to decide on: the cached entry unless `fresh` (or none is cached), else a load.
    /// Tells whether it came from the cache.
    pub(super) async fn current(
        &self,
        stream_id: &StreamId,
        fresh: bool,
    ) -> Result<(Loaded<A>, bool), RepositoryError<A::Error>> {
        let cached =
            if fresh { None } else { self.cache.as_ref().and_then(|cache| cache.take(stream_id)) };
        Ok(match cached {
            Some((version, state)) => (Loaded { state, version, from_snapshot: None }, true),
            None => (self.load(stream_id).await?, false),
        })
    }

    /// The outcome of a command that already ran, from its idempotency record; a key first used
    /// on another stream, or with another command (the store compares the fingerprints: it may
    /// have keyed the record's), is a conflict.
    async fn replayed(
        &self,
        stream_id: &StreamId,
        key: &IdempotencyKey,
        command_print: &Fingerprint,
        record: IdempotencyRecord,
    ) -> Result<CommandOutcome, RepositoryError<A::Error>> {
        let same = record.stream_id == *stream_id
            && self.store.fingerprint_matches(&record, command_print).await?;
        if !same {
            return Err(RepositoryError::Store(StoreError::IdempotencyConflict {
                tenant: self.store.tenant().clone(),
                key: key.clone(),
                original_stream_id: record.stream_id,
            }));
        }
        Ok(CommandOutcome {
            version: record.result.last_version,
            appended: Some(record.result),
            attempts: 0,
            replayed: true,
        })
    }

    /// The command's turn on its stream, unless turns are off.
    pub(super) async fn turn(&self, stream_id: &StreamId) -> Option<super::queue::Turn> {
        if self.options.take_turns { Some(self.queue.turn(stream_id).await) } else { None }
    }

    /// Appends decided events with `Exact(version)`, timed (`es_append_seconds`).
    pub(super) async fn append_at(
        &self,
        stream_id: &StreamId,
        version: u64,
        events: Vec<crate::EventData>,
        options: AppendOptions,
    ) -> Result<crate::AppendResult, StoreError> {
        let started = std::time::Instant::now();
        let appended =
            self.store.append(stream_id, ExpectedVersion::Exact(version), events, options).await;
        metrics::histogram!("es_append_seconds", "aggregate" => A::NAME)
            .record(started.elapsed().as_secs_f64());
        appended
    }

    /// The append options with the publisher's message for each event it publishes.
    pub(super) fn with_publications(
        &self,
        mut options: AppendOptions,
        stream_id: &StreamId,
        events: &[A::Event],
    ) -> AppendOptions {
        if let Some(publisher) = &self.publisher {
            for (index, event) in events.iter().enumerate() {
                if let Some((subject, payload, headers)) = publisher.message(stream_id, event) {
                    let mut publication = Publication::new(index, subject, payload);
                    publication.headers = headers;
                    options = options.publish(publication);
                }
            }
        }
        options
    }

    /// Runs one command alone: its idempotency record if it has a key, then its turn, then
    /// [`decide_alone`](Self::decide_alone). The command is owned, not borrowed: a reference held
    /// across the awaits would ask commands to be `Sync` for the future to be `Send` (a group's
    /// worker runs it in a task of its own).
    pub(super) async fn run(
        &self,
        stream_id: &StreamId,
        command: A::Command,
        options: &CommandOptions,
    ) -> Result<CommandOutcome, RepositoryError<A::Error>>
    where
        A::Command: Clone + Hash,
    {
        let mut append_options = AppendOptions::default();
        let mut command_print = None;
        if let Some(key) = &options.idempotency_key {
            let print = fingerprint::command_fingerprint(A::NAME, stream_id, &command);
            if let Some(record) = self.store.idempotency_record(key).await? {
                return self.replayed(stream_id, key, &print, record).await;
            }
            append_options = append_options.idempotency_key(key.clone()).fingerprint(print);
            command_print = Some(print);
        }
        // From here (a replay above needs no turn), this process's commands for the stream take turns.
        let turn = self.turn(stream_id).await;
        self.decide_alone(stream_id, command, options, append_options, command_print, turn).await
    }

    /// Load, decide, append with `Exact(version)`, retried on conflict, while `_turn` (this
    /// command's turn on the stream, if it holds it itself) is held.
    pub(super) async fn decide_alone(
        &self,
        stream_id: &StreamId,
        command: A::Command,
        options: &CommandOptions,
        append_options: AppendOptions,
        command_print: Option<Fingerprint>,
        _turn: Option<super::queue::Turn>,
    ) -> Result<CommandOutcome, RepositoryError<A::Error>>
    where
        A::Command: Clone + Hash,
    {
        let mut fresh = false;
        for attempt in 1..=self.options.max_attempts {
            let (loaded, from_cache) = self.current(stream_id, fresh).await?;
            let decided = loaded.state.handle(command.clone());
            // A refusal or a no-op appends nothing, so no version check would catch a cached state
            // that another writer made stale: check the stream's version before answering.
            let appends = decided.as_ref().is_ok_and(|events| !events.is_empty());
            if from_cache
                && !appends
                && self.store.stream_version(stream_id).await? != loaded.version
            {
                fresh = true;
                continue;
            }
            let events = match decided {
                Ok(events) => events,
                Err(error) => {
                    // Still the state at that version: keep it for the next command.
                    self.cache_put(stream_id, loaded);
                    return Err(RepositoryError::Domain(error));
                }
            };
            if events.is_empty() {
                let version = loaded.version;
                self.cache_put(stream_id, loaded);
                return Ok(CommandOutcome {
                    version,
                    appended: None,
                    attempts: attempt,
                    replayed: false,
                });
            }
            let data = events
                .iter()
                .map(|event| {
                    event.to_event_data().map(|data| data.with_metadata(options.metadata.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The event the snapshot (if one is due) will be anchored to: the batch's last.
            let last_event_id = data.last().map(|event| event.event_id);
            let append_options = self.with_publications(append_options.clone(), stream_id, &events);
            match self.append_at(stream_id, loaded.version, data, append_options).await {
                Ok(appended) => {
                    let last_version = appended.last_version;
                    self.after_append(stream_id, loaded, &events, last_version, last_event_id);
                    return Ok(CommandOutcome {
                        version: appended.last_version,
                        appended: Some(appended),
                        attempts: attempt,
                        replayed: false,
                    });
                }
                Err(StoreError::VersionConflict { actual, .. }) => {
                    tracing::debug!(
                        attempt,
                        loaded = loaded.version,
                        actual,
                        "es.command: version conflict, deciding again"
                    );
                    metrics::counter!("es_command_conflicts_total", "aggregate" => A::NAME)
                        .increment(1);
                    if attempt < self.options.max_attempts {
                        tokio::time::sleep(self.options.delay_after(attempt)).await;
                    }
                }
                // A concurrent run of the same command (same key) won: answer from its record.
                Err(StoreError::IdempotencyConflict { .. })
                    if options.idempotency_key.is_some() =>
                {
                    if let (Some(key), Some(print)) = (&options.idempotency_key, &command_print)
                        && let Some(record) = self.store.idempotency_record(key).await?
                    {
                        return self.replayed(stream_id, key, print, record).await;
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(RepositoryError::Contention {
            stream_id: stream_id.clone(),
            attempts: self.options.max_attempts,
        })
    }
}
