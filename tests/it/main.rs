//! One integration test binary: it links once and shares its support code. Tests are
//! arranged by the surface they exercise; tests/README.md says what lives where.

mod api;
mod engine;
mod ops;
mod sns;
mod store;
mod structure;
mod support;
