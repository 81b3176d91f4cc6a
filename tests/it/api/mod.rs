//! The history API (`/v1`), its contract `openapi.yaml`, and `/metrics`.

mod executions;
mod metrics;
mod openapi;
