//! The values of settings: their types and the parsers that check them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotifyFormat {
    Json,
    Slack,
    Teams,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The database URL, with the backend chosen from its scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(String),
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else if s.starts_with("sqlite:") {
            Ok(Self::Sqlite(s.to_owned()))
        } else {
            Err("expected a URL starting with sqlite:// or postgres://".into())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    /// Scheme, host, port and database name only: a password can hide in the userinfo, in
    /// the query (`?password=`, libpq's form) or anywhere in a URL that does not parse, so
    /// nothing else is ever printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A file name; only the query (`?mode=rwc`) is left out.
            Self::Sqlite(url) => write!(f, "{}", url.split(['?', '#']).next().unwrap_or_default()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(parsed) => {
                    write!(f, "{}://", parsed.scheme())?;
                    if let Some(host) = parsed.host_str() {
                        write!(f, "{host}")?;
                    }
                    if let Some(port) = parsed.port() {
                        write!(f, ":{port}")?;
                    }
                    write!(f, "{}", parsed.path())
                }
                Err(_) => {
                    let scheme = url.split("://").next().unwrap_or("postgres");
                    write!(f, "{scheme}://(a URL that does not parse)")
                }
            },
        }
    }
}

/// A bearer token for the history API; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(pub String);

impl FromStr for ApiToken {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < 16 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("each token must be at least 16 printable ASCII characters".into());
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(REDACTED)")
    }
}

/// Credentials for HTTP Basic auth; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl FromStr for BasicAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(Self {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err("expected user:password, both non-empty".into()),
        }
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BasicAuth({}:REDACTED)", self.user)
    }
}

/// Parses durations written like `90s`, `5m`, `1h` or `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("'{s}' is not a duration like 90s, 5m, 1h or 30d");
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = s.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| err())?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(err)
}

/// A background task's period, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Every(Duration),
    Off,
}

pub fn parse_schedule(s: &str) -> Result<Schedule, String> {
    match s {
        "off" => Ok(Schedule::Off),
        _ => parse_duration(s)
            .ok()
            .filter(|d| *d >= Duration::from_secs(1))
            .map(Schedule::Every)
            .ok_or_else(|| format!("'{s}' is not `off` or a duration of at least 1s")),
    }
}

/// How long history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Rows older than this are deleted.
    Keep(Duration),
    /// Nothing is ever deleted.
    Forever,
}

pub fn parse_retention(s: &str) -> Result<Retention, String> {
    match s {
        "off" => Ok(Retention::Forever),
        _ => parse_duration(s)
            .ok()
            .filter(|d| *d >= Duration::from_secs(86_400))
            .map(Retention::Keep)
            .ok_or_else(|| format!("'{s}' is not `off` or a duration of at least 1d")),
    }
}

pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("'{s}' is not true or false")),
    }
}

pub fn parse_event_id(s: &str) -> Result<String, String> {
    let digits = s.strip_prefix("RDS-EVENT-").unwrap_or("");
    if digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(format!("'{s}' is not an RDS event id like RDS-EVENT-0154"))
    }
}

pub fn parse_public_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("'{s}' is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!("'{s}' is not an http(s) URL with a host"));
    }
    Ok(s.to_owned())
}

pub fn parse_http_url(s: &str) -> Result<url::Url, String> {
    match url::Url::parse(s) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err(format!("'{s}' is not an http(s) URL")),
    }
}

pub(super) fn parse_prices(s: &str) -> Result<crate::prices::Prices, String> {
    crate::prices::Prices::load(std::path::Path::new(s))
}

pub fn parse_existing_dir(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(format!("'{s}' is not a directory"))
    }
}
