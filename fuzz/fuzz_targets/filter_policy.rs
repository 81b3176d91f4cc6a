//! Two JSON values, a filter policy and a message, into the SNS filter-policy evaluator.
//!
//! Properties: the empty policy passes every message; a policy alone, under `$or`, and
//! twice under `$or` give the same answer; the answer does not depend on the policy's
//! key order. scripts/fuzz runs it with a timeout, so a policy that takes exponential
//! time counts as a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restop::doctor::filter_policy::passes;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    let (Some(Ok(policy)), Some(Ok(message))) = (values.next(), values.next()) else {
        return;
    };
    assert_eq!(passes(&json!({}), &message), Ok(true));
    let answer = passes(&policy, &message);
    if !policy.is_object() {
        assert!(answer.is_err());
        return;
    }
    assert_eq!(passes(&json!({"$or": [policy]}), &message), answer);
    assert_eq!(passes(&json!({"$or": [policy, policy]}), &message), answer);
    if let (Ok(answer), Value::Object(keys)) = (&answer, &policy) {
        // Keys in the opposite order (serde_json keeps them sorted, so rebuild as $or of
        // one-key policies joined by nesting: every key must match either way).
        let mut all = true;
        for (key, rule) in keys.iter().rev() {
            let one = json!({ key.clone(): rule.clone() });
            match passes(&one, &message) {
                Ok(pass) => all &= pass,
                Err(_) => return,
            }
        }
        assert_eq!(
            all, *answer,
            "keys one by one disagree with the whole policy"
        );
    }
});
