//! A `/v1` list route's query string into its parameter parser, and cursors.
//!
//! Properties: a query parses exactly when no parameter repeats; a limit is 1-500; a
//! cursor decodes to a position that encodes back to a cursor decoding to the same
//! position (at the microsecond the server writes), and re-encoding is stable.
#![no_main]

use std::collections::HashSet;

use chrono::{SubsecRound, Timelike};
use libfuzzer_sys::fuzz_target;
use restop::execution::{Disposition, MessageType, Outcome, Status, TextEnum, TriggerKind};
use restop::fuzzing::query::{MAX_LIMIT, Params, decode_cursor, encode_cursor};
use restop::store::Position;

fn check_cursor(position: &Position) {
    let cursor = encode_cursor(position);
    let back = decode_cursor(&cursor).expect("a cursor the server issued decodes");
    assert_eq!(back.id, position.id);
    assert_eq!(back.at, position.at.trunc_subsecs(6));
    assert_eq!(back.at.nanosecond() % 1000, 0);
    assert_eq!(
        encode_cursor(&back),
        cursor,
        "re-encoding a cursor changes it"
    );
}

fn check_enum<T: TextEnum + std::fmt::Debug>(params: &Params, name: &str) {
    if let Ok(Some(value)) = params.one_of::<T>(name) {
        assert_eq!(Some(value.text()), params.text(name).as_deref());
    }
}

fuzz_target!(|data: &str| {
    if let Some(position) = decode_cursor(data) {
        check_cursor(&position);
    }
    let names: Vec<String> = url::form_urlencoded::parse(data.as_bytes())
        .map(|(n, _)| n.into_owned())
        .collect();
    let unique = names.iter().collect::<HashSet<_>>().len() == names.len();
    let Ok(params) = Params::parse(Some(data)) else {
        assert!(!unique, "refused a query without repeats: {data:?}");
        return;
    };
    assert!(unique, "accepted a repeated parameter: {data:?}");
    if let Ok(limit) = params.limit() {
        assert!((1..=MAX_LIMIT).contains(&limit));
    }
    if let Ok(Some(position)) = params.cursor() {
        check_cursor(&position);
    }
    if let Ok(Some(at)) = params.time("since") {
        assert!(params.text("since").is_some());
        let _ = at;
    }
    check_enum::<Status>(&params, "status");
    check_enum::<Outcome>(&params, "outcome");
    check_enum::<TriggerKind>(&params, "trigger");
    check_enum::<MessageType>(&params, "type");
    check_enum::<Disposition>(&params, "disposition");
});
