//! Cross-crate and cross-backend tests of the workspace live in `tests/tests/`; this library is empty.
