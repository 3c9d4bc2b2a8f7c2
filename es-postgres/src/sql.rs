//! Every statement the store sends, in one place, built from shared column lists: what each
//! reads and writes can be reviewed (and kept in step with the migrations) without reading the
//! Rust around it. Numbered parameters are bound by the callers, in the order each names. The
//! one statement built at run time is `CREATE SCHEMA` in `store.rs`, from a schema name that
//! `PgStoreOptions::schema` validated.

/// The tenant's counts: events, streams, payload bytes, head.
pub(crate) const STATISTICS: &str = "SELECT count(*) AS events, count(DISTINCT stream_id) AS streams, \
             coalesce(sum(pg_column_size(payload)), 0)::bigint AS payload_bytes \
             FROM events WHERE tenant = $1";

/// Events per type, most frequent first.
pub(crate) const EVENT_TYPE_COUNTS: &str = "SELECT event_type, count(*) AS n FROM events WHERE tenant = $1 \
             GROUP BY event_type ORDER BY n DESC, event_type";

/// The streams with a snapshot.
pub(crate) const SNAPSHOT_STREAMS: &str =
    "SELECT stream_id FROM snapshots WHERE tenant = $1 ORDER BY stream_id";

/// A page of the stream catalog: the streams whose id starts with $2, after $3 (NULL: from the
/// first), at most $4, in id order, each with its version, last position and last time. The
/// `stream_id >= $2` bound lets the `(tenant, stream_id, stream_version)` index start at the prefix;
/// `starts_with` keeps only ids that have it.
pub(crate) const LIST_STREAMS: &str = "SELECT stream_id, max(stream_version) AS version, \
             max(position) AS last_position, max(recorded_at) AS last_recorded_at \
             FROM events WHERE tenant = $1 AND stream_id >= $2 AND starts_with(stream_id, $2) \
             AND ($3::text IS NULL OR stream_id > $3) \
             GROUP BY stream_id ORDER BY stream_id LIMIT $4";

/// The projections with a checkpoint or parked events.
pub(crate) const PROJECTION_NAMES: &str = "SELECT projection FROM checkpoints WHERE tenant = $1 \
             UNION SELECT projection FROM dead_letters WHERE tenant = $1 ORDER BY 1";

/// A stream's version (its highest event version; NULL when it has none).
pub(crate) const STREAM_VERSION: &str =
    "SELECT max(stream_version) FROM events WHERE tenant = $1 AND stream_id = $2";

/// Which of a batch's event ids is already stored.
pub(crate) const STORED_EVENT_ID: &str =
    "SELECT event_id FROM events WHERE tenant = $1 AND event_id = ANY($2) LIMIT 1";

/// A projection's checkpoint.
pub(crate) const LOAD_CHECKPOINT: &str =
    "SELECT position FROM checkpoints WHERE tenant = $1 AND projection = $2";

/// A projection's first checkpoint (loses to a concurrent first save on the key).
pub(crate) const INSERT_CHECKPOINT: &str = "INSERT INTO checkpoints (tenant, projection, position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// Moves a checkpoint, only from the position the writer read (compare-and-set).
pub(crate) const MOVE_CHECKPOINT: &str = "UPDATE checkpoints SET position = $4, updated_at = now() \
                 WHERE tenant = $1 AND projection = $2 AND position = $3";

/// Removes a checkpoint, returning it.
pub(crate) const RESET_CHECKPOINT: &str =
    "DELETE FROM checkpoints WHERE tenant = $1 AND projection = $2 RETURNING position";

/// Parks an event (parking it again replaces the record).
pub(crate) const PARK: &str = "INSERT INTO dead_letters (tenant, projection, position, event_type, error, attempts, parked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant, projection, position) DO UPDATE SET error = EXCLUDED.error, \
               attempts = EXCLUDED.attempts, parked_at = EXCLUDED.parked_at";

/// A projection's parked events, oldest first.
pub(crate) const PARKED: &str = "SELECT position, event_type, error, attempts, parked_at FROM dead_letters \
             WHERE tenant = $1 AND projection = $2 ORDER BY position";

/// Forgets a parked event.
pub(crate) const UNPARK: &str =
    "DELETE FROM dead_letters WHERE tenant = $1 AND projection = $2 AND position = $3";

/// The last position taken and the transactions still writing below it.
pub(crate) const HORIZON_PROBE: &str = "SELECT o_last_position, o_writers FROM horizon_probe()";

/// Which of these transactions are still running.
pub(crate) const RUNNING_TRANSACTIONS: &str = "SELECT running_transactions($1)";

/// Wakes the listeners of a channel.
pub(crate) const NOTIFY: &str = "SELECT pg_notify($1, '')";

/// A stream's snapshot.
pub(crate) const LOAD_SNAPSHOT: &str = "SELECT aggregate, version, schema_version, state, checksum, event_id FROM snapshots \
             WHERE tenant = $1 AND stream_id = $2";

/// Stores a snapshot, replacing only an older one.
pub(crate) const SAVE_SNAPSHOT: &str = "INSERT INTO snapshots (tenant, stream_id, aggregate, version, schema_version, state, checksum, event_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant, stream_id) DO UPDATE SET aggregate = EXCLUDED.aggregate, \
               version = EXCLUDED.version, schema_version = EXCLUDED.schema_version, \
               event_id = EXCLUDED.event_id, \
               state = EXCLUDED.state, checksum = EXCLUDED.checksum, taken_at = now() \
             WHERE snapshots.version < EXCLUDED.version";

/// The last position any append has taken.
pub(crate) const LAST_POSITION_TAKEN: &str = "SELECT o_last_position FROM horizon_probe()";

/// The sessions holding the read horizon back.
pub(crate) const HORIZON_HOLDERS: &str = "SELECT a.pid, a.xact_start, a.state, a.application_name \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'relation' AND l.relation = 'events'::regclass AND l.mode = 'RowExclusiveLock' \
               AND l.pid <> pg_backend_pid() \
             GROUP BY a.pid, a.xact_start, a.state, a.application_name ORDER BY a.xact_start";

/// The tenant's head at or below the horizon.
pub(crate) const HEAD_POSITION: &str =
    "SELECT max(position) FROM events WHERE tenant = $1 AND position <= $2";

/// An idempotency key's record.
pub(crate) const IDEMPOTENCY_RECORD: &str = "SELECT stream_id, fingerprint, first_version, last_version, first_position, last_position, recorded_at \
             FROM idempotency_keys WHERE tenant = $1 AND key = $2";

/// A projection's checkpoint, locked for the batch's transaction.
pub(crate) const LOCK_CHECKPOINT: &str =
    "SELECT position FROM checkpoints WHERE tenant = $1 AND projection = $2 FOR UPDATE";

// ---- appends (see `append.rs` for how each is chosen)

/// The head of both inserts: the `events` columns an append writes, in the order they bind them.
macro_rules! insert_into_events {
    () => {
        "INSERT INTO events (tenant, position, stream_id, stream_version, event_id, event_type, \
         schema_version, payload, metadata, recorded_at) "
    };
}
/// The version check of an `Exact(n)` append with n > 0: version n exists (see `insert_batch!`).
macro_rules! where_version_exists {
    () => {
        "WHERE EXISTS (SELECT 1 FROM events x WHERE x.tenant = $1 AND x.stream_id = $2 AND x.stream_version = $3)"
    };
}
/// The fast path, one plain statement: appends without an idempotency key that expect an exact
/// version (`Exact(n)`, `NoStream` as `Exact(0)`), which is every append the command pipeline
/// makes. The batch takes versions n+1, n+2, …; the unique key on
/// `(tenant, stream_id, stream_version)` refuses them if the stream is already past n (after waiting for a concurrent
/// append to commit), which aborts the whole statement: all or nothing. That n itself exists is
/// checked once per statement for n > 0 (for n = 0 the unique key on version 1 suffices), so a
/// stream behind the expectation inserts nothing rather than leaving a gap.
/// The INSERT takes its lock on `events` before it evaluates `nextval()`, as the horizon requires.
macro_rules! insert_batch {
    ($($condition:tt)+) => {
        concat!("WITH appended AS (", insert_batch_rows!($($condition)+), " RETURNING position) ",
            summary!("$9"))
    };
}
/// What a fast-path append answers, in one row whatever it wrote: how many events, their lowest
/// and highest positions (`NULL` when none); and the `NOTIFY` the append carries when the
/// parameter `$n` names a channel (see `notify.rs`), sent once, on commit, only if it commits.
macro_rules! summary {
    ($channel:literal) => {
        concat!(
            "SELECT count(*), min(position), max(position), ",
            notify_when!($channel),
            " FROM appended"
        )
    };
}
/// A column that sends the `NOTIFY` when the parameter `$channel` names a channel (not `NULL`):
/// an uncorrelated subquery, so evaluated once per statement, and only if a row is produced.
macro_rules! notify_when {
    ($channel:literal) => {
        concat!(
            "(SELECT count(*) FROM (SELECT pg_notify(",
            $channel,
            ", '') WHERE ",
            $channel,
            "::text IS NOT NULL) AS n)"
        )
    };
}
/// The columns `append_events()` answers, under the names `AppendRow` reads, and the `NOTIFY` the
/// append carries when the parameter `$channel` names a channel: sent only when the function wrote
/// the events (outcome 0; a replay or a conflict wrote nothing to wake anyone for).
macro_rules! append_events_answer {
    ($channel:literal) => {
        concat!(
            "SELECT o_outcome AS outcome, o_first_version AS first_version, ",
            "o_last_version AS last_version, o_first_position AS first_position, ",
            "o_last_position AS last_position, o_actual_version AS actual_version, ",
            "o_original_stream_id AS original_stream_id, CASE WHEN o_outcome = 0 THEN ",
            notify_when!($channel),
            " END AS notified"
        )
    };
}

/// The function path (`append_events()`, see `append.rs`): `$12` the channel of the `NOTIFY` it
/// carries, or `NULL`.
pub(crate) const APPEND: &str = concat!(
    append_events_answer!("$12"),
    " FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);

/// The rows of [`insert_batch!`], without its `RETURNING`.
macro_rules! insert_batch_rows {
    ($($condition:tt)+) => {
        concat!(
            insert_into_events!(),
            "SELECT $1, nextval('event_position_seq'), $2, $3 + e.ord, e.id, e.ty, e.sv, ",
            "e.payload::jsonb, e.meta::jsonb, date_trunc('microseconds', now()) ",
            "FROM unnest($4::uuid[], $5::text[], $6::integer[], $7::text[], $8::text[]) ",
            "WITH ORDINALITY AS e(id, ty, sv, payload, meta, ord) ",
            $($condition)+
        )
    };
}
pub(crate) const APPEND_NEW: &str = insert_batch!("WHERE $3 = 0");
/// The fast path of a keyed append that expects an exact version (`Exact(n)`, `NoStream` as
/// `Exact(0)`): the events of [`insert_batch!`] and their idempotency record in one statement,
/// written only when the key (`$9`) is not recorded yet; `$10` the fingerprint, `$11` the
/// channel of the `NOTIFY` it carries (sent only when it wrote). It answers the count written
/// and the lowest and highest positions. A count of 0 (the key is recorded, or the stream is not
/// at n) leaves the answer to `append_events()`: a replay, a key used for other events, or a
/// conflict. A concurrent append of the same version or the same key makes the unique keys refuse
/// the statement as a whole (after waiting for that append to commit), which `append_events()`
/// then answers under its lock: so a retry racing its first attempt is a replay, as there.
macro_rules! insert_keyed {
    ($($condition:tt)+) => {
        concat!(
            "WITH appended AS (",
            insert_batch_rows!($($condition)+),
            " AND NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.tenant = $1 AND k.key = $9) ",
            "RETURNING position), ",
            "written AS (SELECT count(*) AS n, min(position) AS lo, max(position) AS hi FROM appended), ",
            "recorded AS (INSERT INTO idempotency_keys (tenant, key, stream_id, fingerprint, ",
            "first_version, last_version, first_position, last_position, recorded_at) ",
            "SELECT $1, $9, $2, $10, $3 + 1, $3 + w.n, w.lo, w.hi, date_trunc('microseconds', now()) ",
            "FROM written w WHERE w.n > 0) ",
            "SELECT n, lo, hi, CASE WHEN n > 0 THEN ",
            notify_when!("$11"),
            " END FROM written"
        )
    };
}
pub(crate) const APPEND_KEYED_NEW: &str = insert_keyed!("WHERE $3 = 0");
pub(crate) const APPEND_KEYED_AFTER: &str = insert_keyed!(where_version_exists!());

/// One event, bound as scalars (no arrays to encode and unnest): the commonest append. It answers
/// the columns of [`summary!`] in one row, or no row when it wrote nothing; without the `NOTIFY`
/// (no wrapping statement: this is the variant nearly every single append runs).
macro_rules! insert_one {
    ($($condition:tt)+) => {
        concat!(insert_one_row!($($condition)+), " RETURNING 1::bigint, position, position")
    };
}
/// [`insert_one!`] carrying the `NOTIFY` (`$9`, see [`summary!`]).
macro_rules! insert_one_notifying {
    ($($condition:tt)+) => {
        concat!("WITH appended AS (", insert_one_row!($($condition)+), " RETURNING position) ",
            summary!("$9"))
    };
}
/// The row of [`insert_one!`], without its `RETURNING`.
macro_rules! insert_one_row {
    ($($condition:tt)+) => {
        concat!(
            insert_into_events!(),
            "SELECT $1, nextval('event_position_seq'), $2, $3 + 1, $4, $5, $6, $7::jsonb, $8::jsonb, ",
            "date_trunc('microseconds', now()) ",
            $($condition)+
        )
    };
}
pub(crate) const APPEND_ONE_NEW: &str = insert_one!("WHERE $3 = 0");
pub(crate) const APPEND_ONE_AFTER: &str = insert_one!(where_version_exists!());
pub(crate) const APPEND_ONE_NEW_NOTIFYING: &str = insert_one_notifying!("WHERE $3 = 0");
pub(crate) const APPEND_ONE_AFTER_NOTIFYING: &str = insert_one_notifying!(where_version_exists!());
pub(crate) const APPEND_AFTER: &str = insert_batch!(where_version_exists!());

/// Group commit (see `group_commit.rs`): the appends of several callers, each without a key and
/// expecting an exact version, as one statement. Every array has one element per event; `$1..$3`
/// repeat each event's tenant, stream and expected version, `$4` is its ordinal in its append.
/// An append whose expected version is stale in the statement's snapshot (version n missing, or
/// n + 1 already taken) inserts no row and leaves the others to commit; only a version taken by
/// a transaction still running when the statement began fails the unique key, and with it the
/// whole statement (nothing written: the callers then append one by one). One append per stream
/// per statement, and none for a stream another statement in flight writes.
pub(crate) const APPEND_GROUP: &str = concat!(
    "WITH appended AS (",
    insert_into_events!(),
    "SELECT e.tenant, nextval('event_position_seq'), e.stream_id, e.expected + e.ord, e.id, e.ty, ",
    "e.sv, e.payload::jsonb, e.meta::jsonb, date_trunc('microseconds', now()) ",
    "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::uuid[], $6::text[], ",
    "$7::integer[], $8::text[], $9::text[]) AS e(tenant, stream_id, expected, ord, id, ty, sv, payload, meta) ",
    "WHERE (e.expected = 0 OR EXISTS (SELECT 1 FROM events x WHERE x.tenant = e.tenant ",
    "AND x.stream_id = e.stream_id AND x.stream_version = e.expected)) ",
    "AND NOT EXISTS (SELECT 1 FROM events x WHERE x.tenant = e.tenant ",
    "AND x.stream_id = e.stream_id AND x.stream_version = e.expected + 1) ",
    "RETURNING event_id, position) ",
    // The NOTIFY the batch carries, when `$10` names a channel: once, and only if a row is written.
    "SELECT event_id, position, ",
    notify_when!("$10"),
    " FROM appended"
);

/// The outbox columns an append with publications writes, and the publications as arrays:
/// `$9` the stream's partition, `$10..$13` each publication's event ordinal (1-based), subject,
/// payload and headers (JSON).
macro_rules! insert_into_outbox {
    () => {
        concat!(
            "INSERT INTO outbox (tenant, partition, stream_id, stream_version, event_id, event_type, ",
            "subject, payload, headers, enqueued_at) "
        )
    };
}
macro_rules! publications {
    () => {
        "unnest($10::bigint[], $11::text[], $12::bytea[], $13::text[]) AS o(ord, subject, payload, headers)"
    };
}
/// The fast path with publications: the events and their outbox rows in one statement, so both
/// commit or neither does.
macro_rules! insert_batch_publishing {
    ($($condition:tt)+) => {
        concat!(
            "WITH appended AS (",
            insert_batch_rows!($($condition)+),
            " RETURNING position, stream_version, event_id, event_type, recorded_at), queued AS (",
            insert_into_outbox!(),
            "SELECT $1, $9, $2, a.stream_version, a.event_id, a.event_type, o.subject, o.payload, ",
            "o.headers::jsonb, a.recorded_at FROM ", publications!(),
            " JOIN appended a ON a.stream_version = $3 + o.ord) ",
            summary!("$14")
        )
    };
}
/// One event and its message, bound as scalars: `$9` the partition, `$10..$12` the subject,
/// payload and headers (JSON).
macro_rules! insert_one_publishing {
    ($($condition:tt)+) => {
        concat!(
            "WITH appended AS (",
            insert_one_row!($($condition)+),
            " RETURNING position, stream_version, event_id, event_type, recorded_at), queued AS (",
            insert_into_outbox!(),
            "SELECT $1, $9, $2, a.stream_version, a.event_id, a.event_type, $10, $11, $12::jsonb, ",
            "a.recorded_at FROM appended a) ",
            summary!("$13")
        )
    };
}
pub(crate) const APPEND_ONE_NEW_PUBLISHING: &str = insert_one_publishing!("WHERE $3 = 0");
pub(crate) const APPEND_ONE_AFTER_PUBLISHING: &str =
    insert_one_publishing!(where_version_exists!());
pub(crate) const APPEND_NEW_PUBLISHING: &str = insert_batch_publishing!("WHERE $3 = 0");
pub(crate) const APPEND_AFTER_PUBLISHING: &str = insert_batch_publishing!(where_version_exists!());
/// `append_events()` with publications: the outbox rows are written only when the function
/// wrote the events (outcome 0), in the same statement; `$17` the channel of the `NOTIFY` it
/// carries, or `NULL`.
pub(crate) const APPEND_PUBLISHING: &str = concat!(
    "WITH r AS (SELECT * FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)), ",
    "queued AS (",
    "INSERT INTO outbox (tenant, partition, stream_id, stream_version, event_id, event_type, ",
    "subject, payload, headers, enqueued_at) ",
    "SELECT $1, $12, $2, r.o_first_version + o.ord - 1, ($5::uuid[])[o.ord], ($6::text[])[o.ord], ",
    "o.subject, o.payload, o.headers::jsonb, date_trunc('microseconds', now()) ",
    "FROM r, unnest($13::bigint[], $14::text[], $15::bytea[], $16::text[]) AS o(ord, subject, payload, headers) ",
    "WHERE r.o_outcome = 0) ",
    append_events_answer!("$17"),
    " FROM r"
);

// ---- the outbox (`outbox.rs`)

/// A message a transactional projection enqueues in its batch's transaction; a message of the
/// same id (the event handled again) is not enqueued twice.
pub(crate) const OUTBOX_ENQUEUE: &str = concat!(
    "INSERT INTO outbox (tenant, partition, stream_id, stream_version, event_id, event_type, ",
    "subject, payload, headers, enqueued_at, publisher) ",
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, date_trunc('microseconds', now()), $10) ",
    "ON CONFLICT (tenant, event_id) WHERE publisher IS NOT NULL DO NOTHING"
);

/// A message's columns, in the order `outbox.rs` reads them.
macro_rules! select_outbox {
    ($($rest:literal),+) => {
        concat!(
            "SELECT sequence, stream_id, stream_version, event_id, event_type, subject, payload, ",
            "headers::text AS headers, partition, enqueued_at, parked_reason FROM outbox WHERE ",
            $($rest),+
        )
    };
}
/// Pending messages of the held partitions in sequence order: one index range per partition
/// (`outbox_pending`), merged. A single `partition = ANY(…) ORDER BY sequence` lets the planner
/// walk the primary key instead and filter every delivered row on the way (20 ms a pass after
/// 50,000 deliveries, against 0.4 ms like this: measured with EXPLAIN ANALYZE).
pub(crate) const OUTBOX_PENDING: &str = concat!(
    "SELECT m.* FROM unnest($2::smallint[]) AS wanted(part) CROSS JOIN LATERAL (",
    select_outbox!(
        "tenant = $1 AND partition = wanted.part AND delivered_at IS NULL ",
        "AND parked_reason IS NULL ORDER BY sequence LIMIT $3"
    ),
    ") AS m ORDER BY m.sequence LIMIT $3"
);
pub(crate) const OUTBOX_PARKED: &str =
    select_outbox!("tenant = $1 AND parked_reason IS NOT NULL ORDER BY sequence LIMIT $2");
pub(crate) const OUTBOX_DELIVERED: &str = "UPDATE outbox SET delivered_at = now() \
     WHERE tenant = $1 AND sequence = ANY($2::bigint[]) AND delivered_at IS NULL";
pub(crate) const OUTBOX_PARK: &str =
    "UPDATE outbox SET parked_reason = $3 WHERE tenant = $1 AND sequence = $2";
/// Takes or renews leases: a partition is taken when free, lapsed, or already the caller's;
/// `ON CONFLICT … WHERE` evaluates on the row's latest version, so two relays cannot both win.
/// Also records the relay as alive, in the same statement (one round trip a pass).
pub(crate) const OUTBOX_LEASE: &str = "WITH alive AS (\
     INSERT INTO outbox_relays (tenant, owner, expires_at) \
     VALUES ($1, $2, clock_timestamp() + make_interval(secs => $4)) \
     ON CONFLICT (tenant, owner) DO UPDATE SET expires_at = EXCLUDED.expires_at) \
     INSERT INTO outbox_leases (tenant, partition, owner, expires_at) \
     SELECT $1, p, $2, clock_timestamp() + make_interval(secs => $4) FROM unnest($3::smallint[]) AS p \
     ON CONFLICT (tenant, partition) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
     WHERE outbox_leases.owner = EXCLUDED.owner OR outbox_leases.expires_at <= clock_timestamp() \
     RETURNING partition";
/// A relay stops: its leases and its row go.
pub(crate) const OUTBOX_LEAVE: &str = "WITH released AS (DELETE FROM outbox_leases WHERE tenant = $1 AND owner = $2) \
     DELETE FROM outbox_relays WHERE tenant = $1 AND owner = $2";
pub(crate) const OUTBOX_RELAYS: &str = "SELECT owner FROM outbox_relays \
     WHERE tenant = $1 AND expires_at > clock_timestamp() ORDER BY owner";
/// Forgets relays that lapsed long ago (an hour), so the table does not grow with restarts.
pub(crate) const OUTBOX_RELAYS_FORGET: &str = "DELETE FROM outbox_relays \
     WHERE tenant = $1 AND expires_at < clock_timestamp() - interval '1 hour'";
pub(crate) const OUTBOX_RELEASE: &str = "DELETE FROM outbox_leases \
     WHERE tenant = $1 AND owner = $2 AND partition = ANY($3::smallint[])";
pub(crate) const OUTBOX_LEASES: &str = "SELECT partition, owner, expires_at FROM outbox_leases \
     WHERE tenant = $1 AND expires_at > clock_timestamp() ORDER BY partition";
pub(crate) const OUTBOX_STATS: &str = "SELECT \
     count(*) FILTER (WHERE delivered_at IS NULL AND parked_reason IS NULL), \
     min(enqueued_at) FILTER (WHERE delivered_at IS NULL AND parked_reason IS NULL), \
     count(*) FILTER (WHERE parked_reason IS NOT NULL), \
     count(*) FILTER (WHERE delivered_at IS NOT NULL) \
     FROM outbox WHERE tenant = $1";
pub(crate) const OUTBOX_PRUNE: &str = "DELETE FROM outbox \
     WHERE tenant = $1 AND delivered_at IS NOT NULL AND enqueued_at < $2";

// ---- the inbox of a consumer (`inbox.rs`)

pub(crate) const INBOX_RECORD: &str = "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) \
     ON CONFLICT (consumer, message_id) DO NOTHING";
pub(crate) const INBOX_PARK: &str = "INSERT INTO inbox_parked \
     (consumer, message_id, subject, payload, headers, deliveries, error, parked_at) \
     VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) \
     ON CONFLICT (consumer, message_id) DO UPDATE SET deliveries = EXCLUDED.deliveries, \
     error = EXCLUDED.error, parked_at = EXCLUDED.parked_at";
pub(crate) const INBOX_PARKED: &str = "SELECT consumer, message_id, subject, payload, \
     headers::text AS headers, deliveries, error, parked_at FROM inbox_parked \
     WHERE consumer = $1 ORDER BY parked_at, message_id";

// ---- reads (`read.rs` decodes the envelope's columns by index, in this order)

/// The envelope's columns, in the order `Decoder::decode` reads them (by index: a lookup by name
/// per column per row costs measurably on large reads).
macro_rules! select_events {
    ($($where:literal),+) => {
        concat!(
            "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, ",
            "payload, metadata, recorded_at FROM events WHERE ",
            $($where),+
        )
    };
}

pub(crate) const READ_ALL: &str =
    select_events!("tenant = $1 AND position > $2 AND position <= $3 ORDER BY position LIMIT $4");
pub(crate) const READ_ALL_TYPES: &str = select_events!(
    "tenant = $1 AND position > $2 AND position <= $3 AND event_type = ANY($5) ",
    "ORDER BY position LIMIT $4"
);
pub(crate) const READ_FORWARD: &str = select_events!(
    "tenant = $1 AND stream_id = $2 AND stream_version >= $3 ORDER BY stream_version LIMIT $4"
);
pub(crate) const READ_BACKWARD: &str = select_events!(
    "tenant = $1 AND stream_id = $2 AND stream_version <= $3 ",
    "ORDER BY stream_version DESC LIMIT $4"
);

/// The payloads of a stream's versions $3..=$4, as stored (sealed fields stay sealed).
pub(crate) const SEALED_PAYLOADS: &str = "SELECT payload::text FROM events \
     WHERE tenant = $1 AND stream_id = $2 AND stream_version BETWEEN $3 AND $4 ORDER BY stream_version";

/// A projection's read of payloads only (`replay_all`): `READ_ALL`'s rows, four columns of them.
macro_rules! select_log {
    ($($where:literal),+) => {
        concat!(
            "SELECT position, event_type, schema_version, payload FROM events WHERE ",
            $($where),+
        )
    };
}

pub(crate) const REPLAY_ALL: &str =
    select_log!("tenant = $1 AND position > $2 AND position <= $3 ORDER BY position LIMIT $4");
pub(crate) const REPLAY_ALL_TYPES: &str = select_log!(
    "tenant = $1 AND position > $2 AND position <= $3 AND event_type = ANY($5) ",
    "ORDER BY position LIMIT $4"
);

/// A fold's read (`replay_stream`): version, type, schema version, payload and id only.
pub(crate) const REPLAY: &str = "SELECT stream_version, event_type, schema_version, payload, event_id FROM events \
     WHERE tenant = $1 AND stream_id = $2 AND stream_version >= $3 ORDER BY stream_version LIMIT $4";

// ---- projection locks: one advisory-lock class per schema, one key per tenant and projection

/// The lock's class key: one per schema.
macro_rules! lock_class {
    () => {
        "hashtext(current_schema() || '.projection')"
    };
}
/// The lock's object key: one per tenant (`$1`) and projection (`$2`).
macro_rules! lock_object {
    () => {
        "hashtext($1 || '/' || $2)"
    };
}
/// Takes a projection's lock on this session if nobody holds it.
pub(crate) const TRY_LOCK: &str =
    concat!("SELECT pg_try_advisory_lock(", lock_class!(), ", ", lock_object!(), ")");
/// Whether this session still holds a projection's lock.
pub(crate) const LOCK_HELD: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted ",
    "AND pid = pg_backend_pid() AND classid::int = (",
    lock_class!(),
    ") AND objid::int = (",
    lock_object!(),
    "))"
);

/// The key rows of some subjects.
pub(crate) const PII_LOAD_KEYS: &str = "SELECT subject, master_key, wrapped FROM pii_keys \
             WHERE tenant = $1 AND subject = ANY($2)";

/// Inserts new keys (the first writer wins); returns the rows of the keys it inserted (a subject
/// another writer inserted first is read back separately: its row is not in this statement's
/// snapshot).
pub(crate) const PII_INSERT_KEYS: &str = "INSERT INTO pii_keys (tenant, subject, master_key, wrapped) \
             SELECT $1, s, m, w FROM unnest($2::bytea[], $3::text[], $4::bytea[]) AS k(s, m, w) \
             ON CONFLICT DO NOTHING RETURNING subject, master_key, wrapped";

/// Turns a subject's row into a tombstone, or writes one; returns nothing if it was one already.
pub(crate) const PII_TOMBSTONE: &str = "INSERT INTO pii_keys (tenant, subject, master_key, wrapped, forgotten_at) \
             VALUES ($1, $2, NULL, NULL, now()) \
             ON CONFLICT (tenant, subject) DO UPDATE SET master_key = NULL, wrapped = NULL, forgotten_at = now() \
             WHERE pii_keys.forgotten_at IS NULL RETURNING forgotten_at";

/// Writes an audit record.
pub(crate) const PII_AUDIT_INSERT: &str =
    "INSERT INTO pii_audit (tenant, subject, actor, reason, at) VALUES ($1, $2, $3, $4, $5)";

/// A subject's first audit record.
pub(crate) const PII_FIRST_AUDIT: &str = "SELECT subject, actor, reason, at FROM pii_audit \
             WHERE tenant = $1 AND subject = $2 ORDER BY id LIMIT 1";

/// The audit trail, of the tenant ($2 NULL) or of one subject.
pub(crate) const PII_AUDIT_TRAIL: &str = "SELECT subject, actor, reason, at FROM pii_audit \
             WHERE tenant = $1 AND ($2::bytea IS NULL OR subject = $2) ORDER BY id LIMIT $3";

/// Removes the snapshots of the streams whose events hold a subject's sealed data ($2: its
/// digest in hex): a scan of the tenant's events, which forgetting (rare) pays instead of every
/// append keeping an index.
pub(crate) const PII_DROP_SNAPSHOTS: &str = "DELETE FROM snapshots WHERE tenant = $1 AND stream_id IN \
             (SELECT DISTINCT stream_id FROM events WHERE tenant = $1 \
              AND jsonb_path_exists(payload, '$.*.\"$pii\" ? (@ starts with $d)', jsonb_build_object('d', '1.' || $2::text)))";

/// Live keys not wrapped by the current master key, all tenants.
pub(crate) const PII_STALE_KEYS: &str = "SELECT tenant, subject, master_key, wrapped FROM pii_keys \
             WHERE master_key IS NOT NULL AND master_key <> $1 ORDER BY tenant, subject LIMIT $2";

/// Replaces a wrapped key if it is unchanged.
pub(crate) const PII_REWRAP: &str = "UPDATE pii_keys SET master_key = $5, wrapped = $6 \
             WHERE tenant = $1 AND subject = $2 AND master_key = $3 AND wrapped = $4";

/// Sets a tenant's limits.
pub(crate) const SET_LIMITS: &str = "INSERT INTO tenant_limits (tenant, max_events, max_streams, max_bytes, max_events_per_second) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant) DO UPDATE SET max_events = $2, max_streams = $3, \
             max_bytes = $4, max_events_per_second = $5, updated_at = now()";

/// Removes a tenant's limits (and its counters: usage is counted only under limits).
pub(crate) const REMOVE_LIMITS: &str = "WITH gone AS (DELETE FROM tenant_limits WHERE tenant = $1) \
             DELETE FROM tenant_usage WHERE tenant = $1";

/// The tenants with limits.
pub(crate) const LIMITED_TENANTS: &str = "SELECT tenant FROM tenant_limits";

/// A tenant's limits and usage counted from the log through $2 (a read horizon): see
/// `tenant_usage_sync()` in migration `20261202000002`. No row when it has no limits. With them,
/// the events above the mark committed when the statement began (not stored: an append in flight
/// below them may still commit), and those of them in the server's current second `o_second`.
pub(crate) const TENANT_USAGE_SYNC: &str = "SELECT s.*, a.* FROM tenant_usage_sync($1, $2) s \
             CROSS JOIN LATERAL (SELECT count(*) AS o_above_events, \
             count(*) FILTER (WHERE stream_version = 1) AS o_above_streams, \
             coalesce(sum(octet_length(payload::text)), 0)::bigint AS o_above_bytes, \
             floor(extract(epoch FROM now()))::bigint AS o_second, \
             count(*) FILTER (WHERE recorded_at >= date_trunc('second', now())) AS o_above_in_second \
             FROM events WHERE tenant = $1 AND position > s.o_counted_through) a";

/// Usage and limits of every tenant with events or limits ($1 NULL), or of one: for a tenant
/// with limits, its counted usage and the events past its mark; for another, a count of its
/// events.
pub(crate) const TENANTS_USAGE: &str = "WITH counted AS (SELECT u.tenant, u.events + x.events AS events, \
             u.streams + x.streams AS streams, u.bytes + x.bytes AS bytes FROM tenant_usage u \
             CROSS JOIN LATERAL (SELECT count(*) AS events, count(*) FILTER (WHERE stream_version = 1) AS streams, \
             coalesce(sum(octet_length(payload::text)), 0) AS bytes FROM events e \
             WHERE e.tenant = u.tenant AND e.position > u.counted_through) x \
             WHERE $1::text IS NULL OR u.tenant = $1), \
             scanned AS (SELECT tenant, count(*)::bigint AS events, count(*) FILTER (WHERE stream_version = 1)::bigint AS streams, \
             coalesce(sum(octet_length(payload::text)), 0)::bigint AS bytes FROM events \
             WHERE ($1::text IS NULL OR tenant = $1) AND tenant NOT IN (SELECT tenant FROM counted) GROUP BY tenant), \
             usage AS (SELECT * FROM counted UNION ALL SELECT * FROM scanned) \
             SELECT coalesce(u.tenant, l.tenant) AS tenant, coalesce(u.events, 0)::bigint AS events, \
             coalesce(u.streams, 0)::bigint AS streams, coalesce(u.bytes, 0)::bigint AS bytes, l.max_events, l.max_streams, \
             l.max_bytes, l.max_events_per_second \
             FROM usage u FULL JOIN (SELECT * FROM tenant_limits WHERE $1::text IS NULL OR tenant = $1) l \
             ON l.tenant = u.tenant ORDER BY 1";
