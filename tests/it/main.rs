//! One integration test binary: it links once and shares its support code.

mod accounts;
mod api;
mod catchup;
mod cli;
mod console;
mod doctor;
mod engine_durability;
mod engine_moto;
mod engine_replicas;
mod genuine_messages;
mod metrics;
mod notify_formats;
mod openapi_contract;
mod sns_endpoint;
mod step_functions;
mod store;
mod structure;
mod support;
mod tls;
