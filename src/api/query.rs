//! Query parameters for the list routes, and keyset pagination cursors.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};
use crate::execution::TextEnum;
use crate::store::Position;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

/// A path parameter whose failure to decode (say `%FF`) answers in the API's error shape.
pub struct PathParam<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection: PathRejection| invalid(rejection.body_text()))
    }
}

/// The query string, each parameter at most once. Unknown parameters are ignored.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(invalid(format!("parameter {name} is given more than once")));
            }
        }
        Ok(Self(params))
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    /// A parameter that must be one of `T`'s values.
    pub fn one_of<T: TextEnum>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|value| {
                value.parse::<T>().map_err(|_| {
                    invalid(format!("{name} must be one of {}", T::texts().join(", ")))
                })
            })
            .transpose()
    }

    /// An RFC 3339 time.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.text(name)
            .map(|value| {
                DateTime::parse_from_rfc3339(&value)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| invalid(format!("{name} must be an RFC 3339 time")))
            })
            .transpose()
    }

    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.text("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_LIMIT}"))),
        }
    }

    pub fn cursor(&self) -> Result<Option<Position>, ApiError> {
        self.text("cursor")
            .map(|cursor| {
                decode_cursor(&cursor)
                    .ok_or_else(|| invalid("cursor is not one this server issued"))
            })
            .transpose()
    }
}

/// Opaque to clients: the sort key of the last item returned.
pub fn encode_cursor(position: &Position) -> String {
    let raw = format!(
        "{}\n{}",
        position
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        position.id
    );
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(cursor: &str) -> Option<Position> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (at, id) = raw.split_once('\n')?;
    Some(Position {
        at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
        id: id.to_owned(),
    })
}

/// Cuts a `limit + 1` fetch to one page, with the cursor of the next page if there is one.
pub fn page<T>(
    mut rows: Vec<T>,
    limit: u32,
    position: impl Fn(&T) -> Position,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more
        .then(|| rows.last().map(|last| encode_cursor(&position(last))))
        .flatten();
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let position = Position {
            at: DateTime::parse_from_rfc3339("2026-11-26T07:22:41.245123Z")
                .unwrap()
                .with_timezone(&Utc),
            id: "f3f2fc87-c426-4c2f-9044-b55890c0939c".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&position)), Some(position));
        for bad in [
            "",
            "%%%",
            "bm90IGEgY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("yesterday\nx"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits() {
        let params = |q: &str| Params::parse(Some(q)).unwrap();
        assert_eq!(params("").limit().unwrap(), DEFAULT_LIMIT);
        assert_eq!(params("limit=500").limit().unwrap(), 500);
        for bad in ["limit=0", "limit=501", "limit=-1", "limit=ten"] {
            assert!(params(bad).limit().is_err(), "{bad}");
        }
        assert!(Params::parse(Some("limit=1&limit=2")).is_err());
    }

    #[test]
    fn pages() {
        let rows: Vec<u32> = (0..5).collect();
        let at = Utc::now();
        let position = |n: &u32| Position {
            at,
            id: n.to_string(),
        };
        let (items, next) = page(rows.clone(), 5, position);
        assert_eq!((items.len(), next), (5, None));
        let (items, next) = page(rows, 4, position);
        assert_eq!(items, [0, 1, 2, 3]);
        assert_eq!(decode_cursor(&next.unwrap()).unwrap().id, "3");
    }
}
