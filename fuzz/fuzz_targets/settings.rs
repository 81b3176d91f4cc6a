//! Setting values: durations, schedules, retention, booleans, event ids, URLs, database
//! URLs, API tokens and Basic credentials.
//!
//! Properties: a duration prints (as the settings' messages print it) to a text that
//! parses to the same duration, and only `<digits><s|m|h|d>` parses; a schedule or a
//! retention is `off` or a duration above its floor; secrets never reach `Debug`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use restop::config::{ApiToken, BasicAuth, DatabaseUrl, Retention, Schedule, parse_duration};
use restop::fuzzing::settings::{
    human, parse_bool, parse_event_id, parse_http_url, parse_public_url, parse_retention,
    parse_schedule,
};

fuzz_target!(|s: &str| {
    if let Ok(d) = parse_duration(s) {
        let shape = s.len() >= 2
            && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && matches!(s.as_bytes()[s.len() - 1], b's' | b'm' | b'h' | b'd');
        assert!(shape, "{s:?} parsed as a duration");
        assert_eq!(d.subsec_nanos(), 0);
        let printed = human(d);
        assert_eq!(
            parse_duration(&printed),
            Ok(d),
            "{s:?} printed as {printed:?}"
        );
    }
    match parse_schedule(s) {
        Ok(Schedule::Off) => assert_eq!(s, "off"),
        Ok(Schedule::Every(d)) => {
            assert!(d >= Duration::from_secs(1));
            assert_eq!(parse_duration(s), Ok(d));
        }
        Err(_) => assert!(
            s != "off" && parse_duration(s).is_ok_and(|d| d < Duration::from_secs(1))
                || parse_duration(s).is_err()
        ),
    }
    match parse_retention(s) {
        Ok(Retention::Forever) => assert_eq!(s, "off"),
        Ok(Retention::Keep(d)) => {
            assert!(d >= Duration::from_secs(86_400));
            assert_eq!(parse_duration(s), Ok(d));
        }
        Err(_) => assert!(s != "off"),
    }
    if let Ok(b) = parse_bool(s) {
        let expected = ["true", "1", "yes"].contains(&s.to_ascii_lowercase().as_str());
        assert_eq!(b, expected);
    }
    if let Ok(id) = parse_event_id(s) {
        assert_eq!(id, s);
        assert!(
            s.len() == 14
                && s.starts_with("RDS-EVENT-")
                && s[10..].bytes().all(|b| b.is_ascii_digit())
        );
    }
    for url in [
        parse_http_url(s).ok(),
        parse_public_url(s)
            .ok()
            .map(|u| url::Url::parse(&u).unwrap()),
    ]
    .into_iter()
    .flatten()
    {
        assert!(matches!(url.scheme(), "http" | "https") && url.host().is_some());
    }
    match s.parse::<DatabaseUrl>() {
        Ok(db @ DatabaseUrl::Postgres(_)) => {
            let shown = format!("{db:?}");
            if let Ok(url) = url::Url::parse(s) {
                // Unless the host or path carry the same text, the password is not shown.
                let elsewhere = |p: &str| {
                    url.path().contains(p)
                        || url.host_str().is_some_and(|h| h.contains(p))
                        || url.port().is_some_and(|port| port.to_string().contains(p))
                };
                let (_, rest) = shown.split_once("://").unwrap();
                if let Some(password) = url.password().filter(|p| !p.is_empty() && !elsewhere(p)) {
                    assert!(!rest.contains(password), "{shown} shows the password");
                }
                assert!(!shown.contains('?'), "{shown} shows the query");
            }
        }
        Ok(db @ DatabaseUrl::Sqlite(_)) => assert!(!format!("{db:?}").contains('?')),
        Err(_) => assert!(!s.starts_with("sqlite:") && !s.starts_with("postgres://")),
    }
    if let Ok(token) = s.parse::<ApiToken>() {
        assert_eq!(token.0, s);
        assert_eq!(format!("{token:?}"), "ApiToken(REDACTED)");
    }
    if let Ok(auth) = s.parse::<BasicAuth>() {
        assert_eq!(format!("{}:{}", auth.user, auth.password), s);
        assert!(!auth.user.contains(':'));
        assert_eq!(
            format!("{auth:?}"),
            format!("BasicAuth({}:REDACTED)", auth.user)
        );
    }
});
