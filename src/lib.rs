//! restop keeps stopped Amazon RDS databases stopped.
//!
//! Data flows one way: SNS body -> verified message -> RDS event -> execution -> job
//! steps -> AWS. [`App::build`] wires the parts together from the settings and
//! [`App::run`] serves them on a bound listener, so tests and the binary start the very
//! same server. Modules depend one way: `api` -> `engine` -> `store` -> `execution`, and
//! everything that names an ARN or calls AWS -> `aws`.

pub mod api;
mod app;
pub mod aws;
pub mod clock;
pub mod config;
mod connections;
pub mod doctor;
pub mod engine;
pub mod execution;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod http;
pub mod metrics;
pub mod prices;
pub mod rds;
pub mod retention;
pub mod savings;
pub mod sns;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;

pub use app::{App, Deps};
