//! Commands decided together: while a command for a stream is running in this process, the
//! commands that arrive for the same stream queue, and are then decided one after the other on
//! one load of the state (each on the state its predecessors left) and appended as one batch with
//! one version check. Each caller gets its own outcome: its own versions, its own domain error.
//!
//! - A command with an idempotency key is never grouped (its record is per append): it takes its
//!   turn alone.
//! - A refusal in a group appends nothing for that command and changes nothing for the others;
//!   it is answered once the group's append has confirmed the state it was decided on.
//! - A version conflict re-decides the whole group on a fresh load, as one command would be.
//! - Any other failure of the shared append (a quota, a size limit, the database) runs the
//!   group's commands again one by one, so each gets the outcome it would have had alone.
//! - A caller that stops waiting before its command is decided is left out. The group runs in a
//!   task of its own, so a caller that goes away never fails the others.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::queue::Turn;
use super::snapshots::SnapshotsOf;
use super::{CommandOptions, CommandOutcome, Loaded, Repository, RepositoryError};
use crate::{Aggregate, AppendOptions, AppendResult, Event, EventStore, StoreError, StreamId};

/// What a command decided together gets back.
type Reply<A> = oneshot::Sender<Result<CommandOutcome, RepositoryError<<A as Aggregate>::Error>>>;

/// A command waiting to be decided with others for its stream.
pub(crate) struct Pending<A: Aggregate> {
    command: A::Command,
    options: CommandOptions,
    reply: Reply<A>,
}

/// The streams with a group worker in this process and the commands queued for each (shared by
/// a repository's clones). An entry lives while its worker runs.
pub(crate) struct Together<A: Aggregate> {
    streams: Mutex<HashMap<StreamId, VecDeque<Pending<A>>>>,
}

impl<A: Aggregate> Default for Together<A> {
    fn default() -> Self {
        Self { streams: Mutex::default() }
    }
}

/// Whether a command queued or should run at once.
pub(crate) enum Queued<A: Aggregate> {
    /// Queued: the answer comes on this channel.
    Waiting(oneshot::Receiver<Result<CommandOutcome, RepositoryError<A::Error>>>),
    /// Queued first: the caller must start the stream's worker.
    StartWorker(oneshot::Receiver<Result<CommandOutcome, RepositoryError<A::Error>>>),
}

impl<A: Aggregate> Together<A> {
    /// Queues a command behind the stream's worker, or as the first of a new one.
    pub(crate) fn queue(
        &self,
        stream_id: &StreamId,
        command: A::Command,
        options: CommandOptions,
    ) -> Queued<A> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { command, options, reply };
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queued) = streams.get_mut(stream_id) {
            queued.push_back(pending);
            Queued::Waiting(answer)
        } else {
            streams.insert(stream_id.clone(), VecDeque::from([pending]));
            Queued::StartWorker(answer)
        }
    }

    /// How many commands are queued for the stream (not yet taken into a group).
    pub(crate) fn queued(&self, stream_id: &StreamId) -> usize {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.get(stream_id).map_or(0, VecDeque::len)
    }

    /// Whether the stream has a worker.
    pub(crate) fn has_worker(&self, stream_id: &StreamId) -> bool {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner).contains_key(stream_id)
    }

    /// The next group for the stream's worker (at most `max`, oldest first, without callers that
    /// stopped waiting), or `None` when nothing is queued: then the worker's entry is removed,
    /// under the same lock, so a command queued after this starts a new worker.
    fn next_group(&self, stream_id: &StreamId, max: usize) -> Option<Vec<Pending<A>>> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let queued = streams.get_mut(stream_id)?;
        queued.retain(|pending| !pending.reply.is_closed());
        if queued.is_empty() {
            streams.remove(stream_id);
            return None;
        }
        let take = queued.len().min(max.max(1));
        Some(queued.drain(..take).collect())
    }

    /// Ends a worker that did not finish (it panicked, in a command's decision): its entry goes,
    /// and with it the queued commands' reply channels, so their callers run them alone.
    fn abandon(&self, stream_id: &StreamId) {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner).remove(stream_id);
    }
}

/// Removes the worker's entry if the worker ends without draining it.
struct WorkerGuard<A: Aggregate> {
    together: Arc<Together<A>>,
    stream_id: StreamId,
    finished: bool,
}

impl<A: Aggregate> Drop for WorkerGuard<A> {
    fn drop(&mut self) {
        if !self.finished {
            self.together.abandon(&self.stream_id);
        }
    }
}

impl<A, S, N> Repository<A, S, N>
where
    A: Aggregate,
    S: EventStore,
    N: SnapshotsOf<A>,
{
    /// Runs a command without an idempotency key: at once when its stream is idle here, else
    /// queued to be decided together with the other commands waiting for the stream.
    pub(super) async fn run_together(
        &self,
        stream_id: &StreamId,
        command: A::Command,
        options: CommandOptions,
    ) -> Result<CommandOutcome, RepositoryError<A::Error>>
    where
        A::Command: Clone + Hash,
    {
        // Idle here, or no tokio runtime to run a worker on: the command runs at once (taking
        // its turn as any command does).
        let idle = !self.together.has_worker(stream_id) && !self.queue.is_busy(stream_id);
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !idle => runtime,
            _ => return self.run(stream_id, command, &options).await,
        };
        let answer = match self.together.queue(stream_id, command.clone(), options.clone()) {
            Queued::Waiting(answer) => answer,
            Queued::StartWorker(answer) => {
                let worker = self.clone();
                let stream = stream_id.clone();
                runtime.spawn(async move { worker.work(stream).await });
                answer
            }
        };
        match answer.await {
            Ok(outcome) => outcome,
            // The worker ended in a panic while deciding (nothing of its group was appended):
            // this command runs alone, and panics here if it was the one.
            Err(_) => self.run(stream_id, command, &options).await,
        }
    }

    /// Decides the stream's queued commands, group after group, until none is left. Each group
    /// is taken once the worker holds the stream's turn, so it holds every command that queued
    /// while the one before ran.
    async fn work(self, stream_id: StreamId)
    where
        A::Command: Clone + Hash,
    {
        let mut guard =
            WorkerGuard { together: Arc::clone(&self.together), stream_id, finished: false };
        loop {
            let turn = self.turn(&guard.stream_id).await;
            let Some(group) =
                self.together.next_group(&guard.stream_id, self.options.decide_together)
            else {
                break;
            };
            self.decide_group(&guard.stream_id, group, turn).await;
        }
        guard.finished = true;
    }

    /// Decides a group on one load and appends its events as one batch (see the module's doc),
    /// holding the stream's `turn`.
    async fn decide_group(
        &self,
        stream_id: &StreamId,
        mut group: Vec<Pending<A>>,
        turn: Option<Turn>,
    ) where
        A::Command: Clone + Hash,
    {
        if group.len() == 1 {
            if let Some(pending) = group.pop() {
                self.answer_alone(stream_id, pending, turn).await;
            }
            return;
        }
        let _turn = turn;
        let mut fresh = false;
        for attempt in 1..=self.options.max_attempts {
            let (loaded, from_cache) = match self.current(stream_id, fresh).await {
                Ok(current) => current,
                Err(error) => return self.each_alone(stream_id, group, &error).await,
            };
            let Loaded { mut state, version, from_snapshot } = loaded;
            let decided = match decide_in_turn(&mut state, &group) {
                Ok(decided) => decided,
                Err(error) => return self.each_alone(stream_id, group, &error).await,
            };
            if decided.events.is_empty() {
                if from_cache {
                    match self.store.stream_version(stream_id).await {
                        Ok(current) if current != version => {
                            fresh = true;
                            continue;
                        }
                        Ok(_) => {}
                        Err(error) => {
                            return self.each_alone(stream_id, group, &error.into()).await;
                        }
                    }
                }
                answer(group, decided.counts, version, None, attempt);
                self.cache_put(stream_id, Loaded { state, version, from_snapshot });
                return;
            }
            let last_event_id = decided.data.last().map(|event| event.event_id);
            let append_options =
                self.with_publications(AppendOptions::default(), stream_id, &decided.events);
            match self.append_at(stream_id, version, decided.data, append_options).await {
                Ok(appended) => {
                    let last_version = appended.last_version;
                    // Answered first: nothing after this can undo the append or fail a caller.
                    answer(group, decided.counts, version, Some(appended), attempt);
                    let evolved = Loaded { state, version, from_snapshot };
                    self.after_append(stream_id, evolved, &[], last_version, last_event_id);
                    return;
                }
                Err(StoreError::VersionConflict { actual, .. }) => {
                    tracing::debug!(
                        attempt,
                        loaded = version,
                        actual,
                        commands = group.len(),
                        "es.command: version conflict, deciding the group again"
                    );
                    metrics::counter!("es_command_conflicts_total", "aggregate" => A::NAME)
                        .increment(1);
                    fresh = true;
                    if attempt < self.options.max_attempts {
                        tokio::time::sleep(self.options.delay_after(attempt)).await;
                    }
                }
                Err(error) => return self.each_alone(stream_id, group, &error.into()).await,
            }
        }
        for pending in group {
            let _ = pending.reply.send(Err(RepositoryError::Contention {
                stream_id: stream_id.clone(),
                attempts: self.options.max_attempts,
            }));
        }
    }

    /// Runs a group's commands one by one, after its shared append failed with `why` (logged):
    /// each gets the outcome it would have had alone.
    async fn each_alone(
        &self,
        stream_id: &StreamId,
        group: Vec<Pending<A>>,
        why: &RepositoryError<A::Error>,
    ) where
        A::Command: Clone + Hash,
    {
        tracing::debug!(
            error = %why,
            commands = group.len(),
            "es.command: a group failed before or in its append; running its commands one by one"
        );
        // Still in the group's turn (held by the caller): each decides alone, in queue order.
        for pending in group {
            self.answer_alone(stream_id, pending, None).await;
        }
    }

    /// Decides one queued command alone (holding `turn`, or in a turn its caller holds) and
    /// answers it.
    async fn answer_alone(&self, stream_id: &StreamId, pending: Pending<A>, turn: Option<Turn>)
    where
        A::Command: Clone + Hash,
    {
        let outcome = self
            .decide_alone(
                stream_id,
                pending.command,
                &pending.options,
                AppendOptions::default(),
                None,
                turn,
            )
            .await;
        let _ = pending.reply.send(outcome);
    }
}

/// A group's decisions: per command, how many events it decided or why it was refused; the
/// events in order, and their data with each command's metadata.
struct GroupDecision<A: Aggregate> {
    counts: Vec<Result<usize, A::Error>>,
    events: Vec<A::Event>,
    data: Vec<crate::EventData>,
}

/// Decides each command on the state its predecessors left (a refused one leaves it unchanged).
fn decide_in_turn<A: Aggregate>(
    state: &mut A,
    group: &[Pending<A>],
) -> Result<GroupDecision<A>, RepositoryError<A::Error>>
where
    A::Command: Clone,
{
    let mut decision = GroupDecision {
        counts: Vec::with_capacity(group.len()),
        events: Vec::new(),
        data: Vec::new(),
    };
    for pending in group {
        match state.handle(pending.command.clone()) {
            Ok(events) => {
                for event in &events {
                    state.evolve(event);
                    let data = event.to_event_data()?;
                    decision.data.push(data.with_metadata(pending.options.metadata.clone()));
                }
                decision.counts.push(Ok(events.len()));
                decision.events.extend(events);
            }
            Err(error) => decision.counts.push(Err(error)),
        }
    }
    Ok(decision)
}

/// Answers each command of a group that appended `appended` (or nothing) on `version`: its own
/// versions; the positions are the shared append's.
fn answer<A: Aggregate>(
    group: Vec<Pending<A>>,
    counts: Vec<Result<usize, A::Error>>,
    version: u64,
    appended: Option<AppendResult>,
    attempts: u32,
) {
    let mut reached = version;
    for (pending, count) in group.into_iter().zip(counts) {
        let outcome = match (count, &appended) {
            (Err(error), _) => Err(RepositoryError::Domain(error)),
            (Ok(count), Some(shared)) if count > 0 => {
                let first_version = reached + 1;
                reached += count as u64;
                Ok(CommandOutcome {
                    version: reached,
                    appended: Some(AppendResult {
                        first_version,
                        last_version: reached,
                        first_position: shared.first_position,
                        last_position: shared.last_position,
                    }),
                    attempts,
                    replayed: false,
                })
            }
            (Ok(_), _) => {
                Ok(CommandOutcome { version: reached, appended: None, attempts, replayed: false })
            }
        };
        let _ = pending.reply.send(outcome);
    }
}
