//! Messages built from fuzzed fields and signed with the test kit's key, so that the
//! verifier gets past the signature and every later rule is exercised.
//!
//! Property: the verifier's answer is exactly the one the rules predict, computed here
//! from the fields chosen: cert URL, SubscribeURL, topic allow-list, freshness,
//! SignatureVersion, the certificate's names per partition, and the signature. A message
//! with one signed field changed after signing never verifies.
#![no_main]

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{FixedOffset, SecondsFormat};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use restop::aws::arn::TopicArn;
use restop::sns::Rejection;
use restop::sns::message::SnsMessage;
use restop::sns::verify::Verifier;
use restop::testing::sns::CERT_HASH;
use serde_json::json;

static KIT: LazyLock<common::Kit> = LazyLock::new(common::Kit::new);

const MAX_AGE: u64 = 3600;
const SKEW: u64 = 300;

thread_local! {
    static VERIFIER: std::cell::RefCell<Verifier> = std::cell::RefCell::new(
        KIT.verifier(Vec::new(), 1, Duration::from_secs(MAX_AGE), Duration::from_secs(SKEW)),
    );
}

/// (region, domain of its SNS host, whether the test certificate's name `sns.amazonaws.com`
/// signs for it).
const REGIONS: &[(&str, &str, bool)] = &[
    ("us-east-1", "amazonaws.com", true),
    ("eu-west-1", "amazonaws.com", true),
    ("ap-southeast-3", "amazonaws.com", true),
    ("cn-north-1", "amazonaws.com.cn", false),
    ("us-gov-west-1", "amazonaws.com", false),
];

fn printable(u: &mut Unstructured) -> Result<String> {
    let len = u.int_in_range(1..=130usize)?;
    (0..len)
        .map(|_| Ok(char::from(u.int_in_range(0x21..=0x7eu8)?)))
        .collect()
}

fn run(u: &mut Unstructured) -> Result<()> {
    let (region, domain, signer_ok) = *u.choose(REGIONS)?;
    let partition = restop::aws::arn::partition_of(region).unwrap();
    let topic = format!("arn:{partition}:sns:{region}:123456789012:rds-events");
    let kind = *u.choose(&[
        "Notification",
        "SubscriptionConfirmation",
        "UnsubscribeConfirmation",
    ])?;
    let message_id = if u.ratio(1, 8)? {
        u.arbitrary::<String>()?
    } else {
        printable(u)?
    };
    let message: String = u.arbitrary()?;
    let subject: Option<String> = u.arbitrary()?;
    let token: String = u.arbitrary()?;
    let version = u.choose(&["1", "2", "3", ""])?.to_string();
    let min_version = u.int_in_range(1..=2u8)?;
    let topic_allowed = u.ratio(7, 8)?;
    // Seconds before the verifier's now (negative: ahead of it).
    let age = u.int_in_range(-(SKEW as i64) - 60..=MAX_AGE as i64 + 60)?;
    let nanos = u.int_in_range(0..=999_999_999u32)?;
    let at = KIT.now - chrono::Duration::seconds(age) + chrono::Duration::nanoseconds(nanos.into());
    let timestamp = match u.int_in_range(0..=4u8)? {
        0 => at.to_rfc3339_opts(SecondsFormat::Millis, true),
        1 => at.to_rfc3339_opts(SecondsFormat::Secs, true),
        2 => at.to_rfc3339_opts(SecondsFormat::Nanos, true),
        3 => at.to_rfc3339_opts(SecondsFormat::Millis, false),
        _ => {
            let offset = FixedOffset::east_opt(60 * u.int_in_range(-1_439..=1_439)?).unwrap();
            at.with_timezone(&offset)
                .to_rfc3339_opts(SecondsFormat::AutoSi, false)
        }
    };
    let at = chrono::DateTime::parse_from_rfc3339(&timestamp)
        .unwrap()
        .to_utc();
    let raw_subscribe_url = u.ratio(1, 4)?;
    let subscribe_url = if raw_subscribe_url {
        u.arbitrary::<String>()?
    } else {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "ConfirmSubscription")
            .append_pair("TopicArn", &topic)
            .append_pair("Token", &token)
            .finish();
        format!("https://sns.{region}.{domain}/?{query}")
    };

    let mut body = json!({
        "Type": kind,
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": message,
        "Timestamp": timestamp,
        "SignatureVersion": version,
        "SigningCertURL": format!("https://sns.{region}.{domain}/SimpleNotificationService-{CERT_HASH}.pem"),
    });
    let fields = body.as_object_mut().unwrap();
    if kind == "Notification" {
        if let Some(subject) = &subject {
            fields.insert("Subject".into(), subject.as_str().into());
        }
    } else {
        fields.insert("Token".into(), token.as_str().into());
        fields.insert("SubscribeURL".into(), subscribe_url.as_str().into());
    }
    KIT.signer.sign(&mut body);

    let id_ok = !message_id.is_empty()
        && message_id.len() <= 128
        && message_id.bytes().all(|b| b.is_ascii_graphic());
    let parsed = SnsMessage::parse(body.to_string().as_bytes());
    let msg = match (id_ok, parsed) {
        (true, Ok(msg)) => msg,
        (false, Err(_)) => return Ok(()),
        (ok, parsed) => panic!("MessageId {message_id:?} valid={ok} but parse gave {parsed:?}"),
    };
    assert_eq!(msg.timestamp, at);

    let topic: TopicArn = topic.parse().unwrap();
    let subscribe_check = (kind == "SubscriptionConfirmation").then(|| {
        restop::sns::cert_url::validate_subscribe_url(&subscribe_url, &topic, &token, &[])
    });
    if !raw_subscribe_url {
        assert!(
            subscribe_check.as_ref().is_none_or(|c| c.is_ok()),
            "a well-formed SubscribeURL refused: {subscribe_check:?}"
        );
    }
    let age = KIT.now.signed_duration_since(at);
    let expected: std::result::Result<(), &str> = if subscribe_check.is_some_and(|c| c.is_err()) {
        Err("SubscribeUrl")
    } else if !topic_allowed {
        Err("TopicNotAllowed")
    } else if age > chrono::Duration::seconds(MAX_AGE as i64) {
        Err("Stale")
    } else if -age > chrono::Duration::seconds(SKEW as i64) {
        Err("FromTheFuture")
    } else if !matches!(version.as_str(), "1" | "2") {
        Err("Signature")
    } else if version == "1" && min_version == 2 {
        Err("SignatureVersion")
    } else if !signer_ok {
        Err("Certificate")
    } else {
        Ok(())
    };

    VERIFIER.with_borrow_mut(|verifier| {
        verifier.allowed_topics = if topic_allowed {
            vec![topic.clone()]
        } else {
            Vec::new()
        };
        verifier.min_signature_version = min_version;
        let outcome = KIT.verify(verifier, &msg);
        let got = outcome.as_ref().map(|_| ()).map_err(variant);
        assert_eq!(got, expected, "{outcome:?} for {msg:?}");

        if expected.is_ok() {
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
        }
    });
    Ok(())
}

fn variant(r: &Rejection) -> &'static str {
    match r {
        Rejection::SigningCertUrl(_) => "SigningCertUrl",
        Rejection::SubscribeUrl(_) => "SubscribeUrl",
        Rejection::TopicNotAllowed(_) => "TopicNotAllowed",
        Rejection::Stale(_) => "Stale",
        Rejection::FromTheFuture(_) => "FromTheFuture",
        Rejection::Certificate(_) => "Certificate",
        Rejection::Signature(_) => "Signature",
        Rejection::SignatureVersion(_) => "SignatureVersion",
        Rejection::CertificateUnavailable(_) => "CertificateUnavailable",
        _ => "other",
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
