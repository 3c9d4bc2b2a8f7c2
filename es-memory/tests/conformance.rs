//! The es-core conformance suite against the in-memory backend.

async fn fresh_backend() -> es_memory::MemoryStore {
    es_memory::MemoryStore::new()
}

es_core::capability_tests!(fresh_backend);
es_core::conformance_tests!(fresh_backend);
es_core::outbox_tests!(fresh_backend);
es_core::quota_tests!(fresh_backend);
