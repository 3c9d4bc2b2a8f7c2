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

pub(crate) const APPEND: &str = "SELECT o_outcome AS outcome, o_first_version AS first_version, \
     o_last_version AS last_version, o_first_position AS first_position, \
     o_last_position AS last_position, o_actual_version AS actual_version, \
     o_original_stream_id AS original_stream_id \
     FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

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
        concat!(
            insert_into_events!(),
            "SELECT $1, nextval('event_position_seq'), $2, $3 + e.ord, e.id, e.ty, e.sv, ",
            "e.payload::jsonb, e.meta::jsonb, date_trunc('microseconds', now()) ",
            "FROM unnest($4::uuid[], $5::text[], $6::integer[], $7::text[], $8::text[]) ",
            "WITH ORDINALITY AS e(id, ty, sv, payload, meta, ord) ",
            $($condition)+,
            " RETURNING position"
        )
    };
}
pub(crate) const APPEND_NEW: &str = insert_batch!("WHERE $3 = 0");
/// One event, bound as scalars (no arrays to encode and unnest): the commonest append.
macro_rules! insert_one {
    ($($condition:tt)+) => {
        concat!(
            insert_into_events!(),
            "SELECT $1, nextval('event_position_seq'), $2, $3 + 1, $4, $5, $6, $7::jsonb, $8::jsonb, ",
            "date_trunc('microseconds', now()) ",
            $($condition)+,
            " RETURNING position"
        )
    };
}
pub(crate) const APPEND_ONE_NEW: &str = insert_one!("WHERE $3 = 0");
pub(crate) const APPEND_ONE_AFTER: &str = insert_one!(where_version_exists!());
pub(crate) const APPEND_AFTER: &str = insert_batch!(where_version_exists!());

// ---- reads (`read.rs` decodes the envelope's columns by index, in this order)

/// The envelope's columns, in the order `Decoder::decode` reads them (by index: a lookup by name
/// per column per row costs measurably on large reads).
macro_rules! select_events {
    ($($where:literal),+) => {
        concat!(
            "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, ",
            "payload::text AS payload, metadata::text AS metadata, recorded_at FROM events WHERE ",
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

/// A fold's read (`replay_stream`): version, type, schema version, payload and id only.
pub(crate) const REPLAY: &str = "SELECT stream_version, event_type, schema_version, payload::text AS payload, event_id FROM events \
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
