//! The backend conformance suite: the event-store contract as executable cases.
//!
//! A backend proves itself by calling [`conformance_tests!`](crate::conformance_tests) in one of its
//! test files with a function that builds a fresh, empty backend:
//!
//! ```text
//! // es-memory/tests/conformance.rs (compiled and run by the workspace's tests)
//! async fn fresh_backend() -> es_memory::MemoryStore {
//!     es_memory::MemoryStore::new()
//! }
//! es_core::conformance_tests!(fresh_backend);
//! ```
//!
//! That expands to a module `conformance` holding one `#[test]` per case (so `cargo test
//! conformance` runs them all and each is reported by name). Every case takes its own tenants, so a
//! backend that shares one database between cases still runs them in isolation.
//!
//! The cases are public functions too, for a backend that wants to run one under other conditions.
#![allow(clippy::missing_panics_doc)]

mod append;
mod capabilities;
mod concurrency;
mod fixtures;
mod idempotency;
mod notify;
mod outbox;
mod payloads;
mod pii;
mod quota;
mod read_all;
mod read_stream;
mod subscribe;
mod tenancy;
mod transactional;

use std::future::Future;

pub use append::*;
pub use capabilities::*;
pub use concurrency::*;
pub use idempotency::*;
pub use notify::*;
pub use outbox::*;
pub use payloads::*;
pub use pii::*;
pub use quota::*;
pub use read_all::*;
pub use read_stream::*;
pub use subscribe::*;
pub use tenancy::*;
pub use transactional::*;

/// Runs one case on a fresh multi-threaded runtime (two workers, so concurrency cases interleave for
/// real). Used by the code [`conformance_tests!`](crate::conformance_tests) generates.
pub fn run<F: Future<Output = ()>>(case: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test needs a tokio runtime");
    runtime.block_on(case);
}

/// Expands to a module `conformance` with one `#[test]` per case of the event-store contract, each
/// run against the backend that `$factory().await` builds.
///
/// `$factory` is a path to a function (or any callable) returning a future of a fresh
/// [`MultiTenantStore`](crate::MultiTenantStore). See [`testing::conformance`](crate::testing::conformance).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::__conformance_cases! { $factory;
            append_to_new_stream_starts_at_version_one,
            versions_are_contiguous_across_appends,
            batch_is_contiguous_and_shares_one_timestamp,
            no_stream_on_existing_stream_conflicts,
            stream_exists_on_empty_stream_conflicts,
            stream_exists_on_existing_stream_appends,
            exact_version_matching_appends,
            exact_version_mismatch_conflicts_and_reports_actual,
            exact_zero_means_empty_stream,
            any_appends_to_new_and_existing_streams,
            conflicting_batch_writes_nothing,
            invalid_batches_are_rejected_and_write_nothing,
            duplicate_event_id_is_rejected_and_writes_nothing,
            event_ids_are_scoped_to_tenant,
            concurrent_exact_appends_to_new_stream_have_one_winner,
            concurrent_exact_appends_one_winner_per_version,
            concurrent_any_appends_lose_nothing,
            any_appends_beside_exact_writers_never_conflict,
            concurrent_appends_to_many_streams_are_all_read_once,
            tailing_reader_sees_every_event_once_in_order,
            subscription_catches_up_then_follows_live,
            filtered_subscription_follows_only_its_types,
            idempotent_retry_returns_first_result_and_writes_nothing,
            idempotent_retry_ignores_expected_version_after_stream_moved,
            idempotent_retry_with_rebuilt_event_ids_is_same_request,
            idempotency_key_with_other_events_conflicts,
            idempotency_key_on_other_stream_conflicts,
            concurrent_appends_of_one_key_to_other_streams_write_one,
            idempotency_key_with_other_expected_version_conflicts,
            idempotency_keys_are_scoped_to_tenant,
            concurrent_idempotent_retries_write_once,
            concurrent_keyed_retries_with_exact_versions_all_replay,
            failed_append_leaves_no_idempotency_record,
            idempotency_record_is_queryable,
            read_stream_forward_from_middle,
            read_stream_backward_from_end,
            read_stream_backward_from_middle,
            read_stream_past_end,
            read_stream_with_limit,
            read_stream_longer_than_a_page,
            missing_stream_reads_empty_at_version_zero,
            read_stream_returns_only_that_stream,
            replay_stream_matches_read_stream,
            read_all_order_equals_commit_order,
            read_all_after_position_resumes_from_middle,
            read_all_filters_by_event_type,
            read_all_filter_finds_a_rare_type_far_into_the_log,
            read_all_with_limit_and_small_pages,
            read_all_past_head_is_empty,
            head_position_tracks_appends,
            read_all_pages_through_a_large_log,
            replay_all_matches_read_all,
            tenants_cannot_read_each_others_streams,
            tenants_have_independent_stream_versions,
            read_all_and_head_are_scoped_to_tenant,
            handle_reports_its_tenant,
            envelope_round_trips,
            large_payloads_round_trip,
            unicode_payloads_and_ids_round_trip,
            invalid_ids_are_rejected,
            unstorable_payloads_and_metadata_are_refused_everywhere,
            wait_for_events_wakes_on_append,
            wait_for_events_times_out_without_append,
            wait_for_events_returns_at_once_when_head_is_past,
        }
    };
}

/// Expands to a module `capability_conformance` with one `#[test]` per case of the capabilities
/// beside the store (snapshots, checkpoints, dead letters, projection locks, the stream catalog), for a backend whose
/// tenant handles implement them all ([`Capabilities`]).
#[macro_export]
macro_rules! capability_tests {
    ($factory:path) => {
        #[allow(unused_imports)]
        mod capability_conformance {
            use super::*;
            $crate::__conformance_cases! { @cases $factory;
                snapshots_are_scoped_to_tenant_and_never_go_back,
                checkpoints_are_scoped_to_tenant_and_compare_and_set,
                dead_letters_are_scoped_to_tenant,
                projection_locks_are_scoped_to_tenant,
                stream_catalog_pages_by_prefix_within_its_tenant,
            }
        }
    };
}

/// Expands to a module `outbox_conformance` with one `#[test]` per case of
/// [`OutboxStore`](crate::outbox::OutboxStore), for a backend that keeps an outbox.
#[macro_export]
macro_rules! outbox_tests {
    ($factory:path) => {
        #[allow(unused_imports)]
        mod outbox_conformance {
            use super::*;
            $crate::__conformance_cases! { @cases $factory;
                publications_are_enqueued_with_their_append_only,
                publications_carry_correlation_and_causation,
                outbox_messages_settle_by_partition_and_tenant,
                outbox_leases_are_exclusive_until_they_lapse,
                waiting_for_messages_wakes_on_an_enqueue,
            }
        }
    };
}

/// Expands to a module `pii_conformance` with one `#[test]` per case of personal data
/// ([`PersonalData`](crate::pii::PersonalData)), for a backend that implements [`PiiBackend`].
#[macro_export]
macro_rules! pii_tests {
    ($factory:path) => {
        #[allow(unused_imports)]
        mod pii_conformance {
            use super::*;
            $crate::__conformance_cases! { @cases $factory;
                personal_data_is_sealed_at_rest_and_opened_on_read,
                forgetting_redacts_once_and_for_all,
                personal_data_keys_are_scoped_to_their_tenant,
                a_wrong_master_key_fails_loudly_and_writes_nothing,
                master_key_rotation_rewraps_keys_without_touching_events,
                a_sealed_append_retried_with_its_key_replays,
                personal_data_without_a_subject_is_refused,
                publishing_personal_data_in_clear_is_refused,
                the_reserved_name_is_refused_and_odd_field_names_read_back,
            }
        }
    };
}

/// Expands to a module `quota_conformance` with one `#[test]` per case of per-tenant quotas
/// ([`TenantQuotas`](crate::quota::TenantQuotas)).
#[macro_export]
macro_rules! quota_tests {
    ($factory:path) => {
        #[allow(unused_imports)]
        mod quota_conformance {
            use super::*;
            $crate::__conformance_cases! { @cases $factory;
                an_append_past_a_limit_is_refused_and_writes_nothing,
                replays_of_an_idempotent_append_count_once,
                limits_change_live_and_usage_is_reported,
                concurrent_writers_overshoot_a_limit_by_at_most_what_is_in_flight,
            }
        }
    };
}

/// Expands to a module `transactional_conformance` with one `#[test]` per case of
/// [`TransactionalStore`](crate::projection::TransactionalStore), for a backend that keeps
/// transactional projections (es-postgres).
#[macro_export]
macro_rules! transactional_tests {
    ($factory:path) => {
        #[allow(unused_imports)]
        mod transactional_conformance {
            use super::*;
            $crate::__conformance_cases! { @cases $factory;
                transactional_batches_move_the_checkpoint_only_when_committed,
                an_open_batch_holds_off_a_second_runner,
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::conformance::run(async {
                    let backend = $factory().await;
                    $crate::testing::conformance::$case(backend).await;
                });
            }
        )*
    };
    ($factory:path; $($case:ident),* $(,)?) => {
        #[allow(unused_imports)]
        mod conformance {
            use super::*;
            $crate::__conformance_cases! { @cases $factory; $($case),* }
        }
    };
}
