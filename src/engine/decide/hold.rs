//! Holds: a protected database's owner lets forced starts run until a date, with a tag
//! (`RESTOP_HOLD_TAG_KEY`) whose value is an ISO 8601 date or date-time.

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};

/// What the hold tag says at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// No hold tag.
    None,
    /// Held: forced starts run until `until` (exclusive).
    Until(DateTime<Utc>),
    /// The hold is over: protected as usual.
    Over(DateTime<Utc>),
    /// A value that is not a date: protected as usual, and the value is named.
    Invalid(String),
}

/// The hold the first tag with exactly `key` sets, as of `now`.
pub fn hold_rule<'a>(
    mut tags: impl Iterator<Item = (&'a str, &'a str)>,
    key: &str,
    now: DateTime<Utc>,
) -> Hold {
    let Some((_, value)) = tags.find(|(tag, _)| *tag == key) else {
        return Hold::None;
    };
    match parse_hold_until(value) {
        Some(until) if now < until => Hold::Until(until),
        Some(until) => Hold::Over(until),
        None => Hold::Invalid(value.to_owned()),
    }
}

/// The end of a hold: a date-time with a zone as given, one without a zone in UTC, a
/// date alone at the end of that day in UTC (the next midnight, exclusive).
pub fn parse_hold_until(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let next = date.checked_add_days(Days::new(1))?;
        return Some(next.and_hms_opt(0, 0, 0)?.and_utc());
    }
    // `%#z` takes `Z`, `+02`, `+0200` and `+02:00`; `T` or (as RFC 3339 allows) a space.
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M%#z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M%#z",
    ] {
        if let Ok(at) = DateTime::parse_from_str(value, format) {
            return Some(at.to_utc());
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(value, format) {
            return Some(at.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_date_means_the_end_of_that_day_in_utc() {
        assert_eq!(
            parse_hold_until("2026-12-05"),
            Some(at("2026-12-06T00:00:00Z"))
        );
        assert_eq!(
            parse_hold_until(" 2026-12-31 "),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            parse_hold_until("2028-02-29"),
            Some(at("2028-03-01T00:00:00Z"))
        );
    }

    #[test]
    fn date_times_are_utc_unless_a_zone_is_given() {
        for (value, expected) in [
            ("2026-12-05T18:30:00Z", "2026-12-05T18:30:00Z"),
            ("2026-12-05T18:30:00.250Z", "2026-12-05T18:30:00.250Z"),
            ("2026-12-05T18:30:00", "2026-12-05T18:30:00Z"),
            ("2026-12-05T18:30", "2026-12-05T18:30:00Z"),
            ("2026-12-05 18:30:00", "2026-12-05T18:30:00Z"),
            ("2026-12-05T18:30:00+02:00", "2026-12-05T16:30:00Z"),
            ("2026-12-05T18:30:00+0200", "2026-12-05T16:30:00Z"),
            ("2026-12-05T18:30:00-05", "2026-12-05T23:30:00Z"),
            ("2026-12-05T18:30+01:00", "2026-12-05T17:30:00Z"),
        ] {
            assert_eq!(parse_hold_until(value), Some(at(expected)), "{value}");
        }
    }

    #[test]
    fn anything_else_is_not_a_date() {
        for value in [
            "",
            "yes",
            "friday",
            "2026-13-01",
            "2026-02-30",
            "05/12/2026",
            "2026-12-05T25:00:00Z",
            "2026-12-05T18:30:00 UTC",
            "1764950400",
        ] {
            assert_eq!(parse_hold_until(value), None, "{value:?}");
        }
    }

    #[test]
    fn a_hold_lasts_until_its_end_exclusive() {
        let key = "auto-restart-protection-hold-until";
        let rule = |value: &str, now: &str| hold_rule([(key, value)].into_iter(), key, at(now));
        let end = at("2026-12-06T00:00:00Z");
        assert_eq!(rule("2026-12-05", "2026-12-05T23:59:59Z"), Hold::Until(end));
        assert_eq!(rule("2026-12-05", "2026-12-06T00:00:00Z"), Hold::Over(end));
        assert_eq!(
            rule("someday", "2026-12-05T00:00:00Z"),
            Hold::Invalid("someday".into())
        );
        let other = hold_rule(
            [("Auto-Restart-Protection-Hold-Until", "2099-01-01")].into_iter(),
            key,
            at("2026-12-05T00:00:00Z"),
        );
        assert_eq!(other, Hold::None, "the key is matched exactly");
    }
}
