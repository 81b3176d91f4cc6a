//! Raw bytes into the SNS delivery parser, and what parses into the verifier.
//!
//! Properties: a parsed message re-serialised parses to the same message; a message whose
//! certificate is known (the test kit's, the real fixtures') is verified at its own
//! Timestamp, and when it verifies, changing any one signed field makes it fail on the
//! signature (or, for a confirmation, on its SubscribeURL), while changing nothing signed
//! keeps it verifying.
#![no_main]

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use restop::sns::Rejection;
use restop::sns::message::SnsMessage;
use restop::sns::verify::Verifier;

static KIT: LazyLock<common::Kit> = LazyLock::new(common::Kit::new);

thread_local! {
    static VERIFIER: std::cell::RefCell<Verifier> = std::cell::RefCell::new(
        KIT.verifier(Vec::new(), 1, Duration::from_secs(3600), Duration::from_secs(300)),
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = SnsMessage::parse(data) else {
        return;
    };
    let again = SnsMessage::parse(common::to_json(&msg).to_string().as_bytes())
        .expect("a re-serialised message parses");
    assert_eq!(again, msg, "re-serialising changes the message");
    let text = msg.string_to_sign();
    assert!(
        text.starts_with("Message\n")
            && text.ends_with(&format!("Type\n{}\n", msg.message_type.as_str()))
    );

    if !KIT.offline(&msg) {
        return;
    }
    KIT.clock.set(msg.timestamp);
    VERIFIER.with_borrow_mut(|verifier| {
        verifier.allowed_topics = vec![msg.topic_arn.clone()];
        if KIT.verify(verifier, &msg).is_err() {
            return;
        }
        for field in common::signed_fields(&msg) {
            let Some(forged) = common::tampered(&msg, field) else {
                continue;
            };
            verifier.allowed_topics = vec![msg.topic_arn.clone(), forged.topic_arn.clone()];
            let outcome = KIT.verify(verifier, &forged);
            assert!(
                matches!(
                    outcome,
                    Err(Rejection::Signature(_) | Rejection::SubscribeUrl(_))
                ),
                "changing {field} still verifies: {outcome:?}"
            );
        }
        // Unsigned extras change nothing.
        let mut json = common::to_json(&msg);
        let fields = json.as_object_mut().unwrap();
        fields.insert("UnsubscribeURL".into(), "https://example.com/".into());
        fields.insert(
            "MessageAttributes".into(),
            serde_json::json!({"a": {"Type": "String", "Value": "b"}}),
        );
        if msg.token.is_some() {
            fields.insert("Subject".into(), "not signed here".into());
        }
        let extra = SnsMessage::parse(json.to_string().as_bytes()).unwrap();
        verifier.allowed_topics = vec![msg.topic_arn.clone()];
        assert_eq!(
            KIT.verify(verifier, &extra),
            Ok(()),
            "an unsigned field broke the signature"
        );
    });
});
