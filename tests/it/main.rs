//! One integration test binary: it links once and shares its support code.

mod cli;
mod genuine_messages;
mod sns_endpoint;
mod support;
