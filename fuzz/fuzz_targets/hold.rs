//! A hold tag's value into the hold date parser and the hold rule.
//!
//! Properties: surrounding whitespace changes nothing; a parsed end, printed as RFC 3339,
//! parses to the same moment; the rule says held strictly before the end and over from it
//! on, and names a value that is not a date.
#![no_main]

use chrono::{Duration, SecondsFormat};
use libfuzzer_sys::fuzz_target;
use restop::engine::decide::hold::{Hold, hold_rule, parse_hold_until};

fuzz_target!(|s: &str| {
    let until = parse_hold_until(s);
    assert_eq!(parse_hold_until(&format!(" \t{s}\n")), until);
    let tags = [("other", "x"), ("restop:hold", s)];
    let Some(until) = until else {
        let now = chrono::DateTime::UNIX_EPOCH;
        assert_eq!(
            hold_rule(tags.into_iter(), "restop:hold", now),
            Hold::Invalid(s.to_owned())
        );
        return;
    };
    let printed = until.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    assert_eq!(
        parse_hold_until(&printed),
        Some(until),
        "{s:?} -> {printed:?}"
    );
    if let Some(before) = until.checked_sub_signed(Duration::nanoseconds(1)) {
        assert_eq!(
            hold_rule(tags.into_iter(), "restop:hold", before),
            Hold::Until(until)
        );
    }
    assert_eq!(
        hold_rule(tags.into_iter(), "restop:hold", until),
        Hold::Over(until)
    );
});
