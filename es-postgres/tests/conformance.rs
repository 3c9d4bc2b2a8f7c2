//! The es-core conformance suite against PostgreSQL, each case on its own schema.

mod common;

es_core::capability_tests!(common::fresh_schema);
es_core::transactional_tests!(common::fresh_schema);
es_core::conformance_tests!(common::fresh_schema);
es_core::outbox_tests!(common::fresh_schema);
es_core::quota_tests!(common::fresh_schema);
