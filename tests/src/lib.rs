//! Cross-crate and cross-backend tests of the workspace live in `tests/tests/`; this library holds
//! what they share.

pub mod metrics;

/// Runs each case (an `async fn(store)` taking a tenant handle) once on each backend, as
/// `memory::<case>` and `postgres::<case>`, each on a multi-threaded runtime with two workers:
///
/// - `tenant: <expr>` is the tenant both handles are scoped to (evaluated in the generated
///   modules, which see the file's items);
/// - `postgres: <path>` (optional) builds the PostgreSQL fixture, an
///   `es_postgres::testing::FreshSchema` (its schema is dropped when the test ends, even on a
///   panic); by default `FreshSchema::new`.
///
/// ```text
/// tests::on_both_backends!(tenant: TenantId::new("bank").unwrap(); case_one, case_two);
/// ```
#[macro_export]
macro_rules! on_both_backends {
    (tenant: $tenant:expr, postgres: $postgres:path; $($case:ident),* $(,)?) => {
        mod memory {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = ::es_memory::MemoryStore::new();
                    super::$case(::es_core::MultiTenantStore::tenant(&backend, $tenant)).await;
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fresh = $postgres().await;
                    super::$case(::es_core::MultiTenantStore::tenant(&fresh, $tenant)).await;
                }
            )*
        }
    };
    (tenant: $tenant:expr; $($case:ident),* $(,)?) => {
        $crate::on_both_backends!(
            tenant: $tenant, postgres: ::es_postgres::testing::FreshSchema::new; $($case),*
        );
    };
}
