//! The crate-private parsers the fuzz targets in `fuzz/` call, behind the `fuzzing` feature.
//! Not an API: nothing outside `fuzz/` enables the feature, and the service never does.

/// `/v1` query parameters and pagination cursors.
pub mod query {
    pub use crate::api::query::{DEFAULT_LIMIT, MAX_LIMIT, Params, decode_cursor, encode_cursor};
}

/// The parsers behind the settings' values.
pub mod settings {
    use std::time::Duration;

    pub use crate::config::values::{
        parse_bool, parse_event_id, parse_http_url, parse_public_url, parse_retention,
        parse_schedule,
    };

    /// A duration as the settings' messages write it (`90s`, `5m`, `1h`, `30d`).
    pub fn human(d: Duration) -> String {
        crate::config::human(d)
    }
}
