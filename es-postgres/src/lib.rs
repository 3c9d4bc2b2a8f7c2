//! # es-postgres
//!
//! The PostgreSQL backend of [`es_core`] (work in progress): sqlx with embedded migrations, a batch
//! append in one statement, gap-safe global order, LISTEN/NOTIFY wake-ups. Until it lands, use
//! `es-memory`.
