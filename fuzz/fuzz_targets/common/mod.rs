//! What several targets share: a verifier that never touches the network, and a runtime.
//!
//! The certificate directory holds the test kit's signing certificate (under the test
//! kit's hash) and, when `RESTOP_FUZZ_CERTS` names a directory (scripts/fuzz points it at
//! the shared fixtures), the real SNS certificates found there. A message is only handed
//! to `Verifier::verify` when its certificate is in that directory, so no input can make
//! the verifier download anything.

#![allow(dead_code)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use restop::aws::arn::TopicArn;
use restop::clock::ManualClock;
use restop::sns::Rejection;
use restop::sns::cert_url::validate_cert_url;
use restop::sns::certs::CertStore;
use restop::sns::message::SnsMessage;
use restop::sns::verify::Verifier;
use restop::testing::sns::{CERT_HASH, SigningKey};

pub struct Kit {
    pub runtime: tokio::runtime::Runtime,
    pub signer: SigningKey,
    /// The moment the signer's certificate was made around; the verifier's clock.
    pub now: DateTime<Utc>,
    pub clock: Arc<ManualClock>,
    pub dir: PathBuf,
    /// `SimpleNotificationService-<hash>.pem` names present in `dir`.
    pub files: HashSet<String>,
}

impl Kit {
    pub fn new() -> Self {
        let signer = SigningKey::sns_like();
        let now = Utc::now();
        let dir = std::env::temp_dir().join(format!("restop-fuzz-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = HashSet::new();
        let test_name = format!("SimpleNotificationService-{CERT_HASH}.pem");
        std::fs::write(dir.join(&test_name), &signer.cert_pem).unwrap();
        files.insert(test_name);
        if let Some(fixtures) = std::env::var_os("RESTOP_FUZZ_CERTS") {
            for entry in std::fs::read_dir(fixtures).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                // Fixture names are `<year>-<issuer>_SimpleNotificationService-<hash>.pem`.
                if let Some((_, file)) = name.split_once('_') {
                    std::fs::copy(&path, dir.join(file)).unwrap();
                    files.insert(file.to_owned());
                }
            }
        }
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            signer,
            now,
            clock: Arc::new(ManualClock::new(now)),
            dir,
            files,
        }
    }

    /// A verifier that trusts only the certificates in `dir`. Each call builds a new cert
    /// cache, so build one per target and reuse it.
    pub fn verifier(
        &self,
        allowed: Vec<TopicArn>,
        min_signature_version: u8,
        max_age: Duration,
        max_future_skew: Duration,
    ) -> Verifier {
        Verifier {
            allowed_topics: allowed,
            extra_hosts: Vec::new(),
            max_age,
            max_future_skew,
            min_signature_version,
            certs: CertStore::new(
                Some(self.dir.clone()),
                // Never used: verify() is only called for certificates in `dir`.
                reqwest::Client::builder()
                    .timeout(Duration::from_millis(1))
                    .build()
                    .unwrap(),
                self.clock.clone(),
            ),
            clock: self.clock.clone(),
        }
    }

    /// Whether verifying `msg` stays offline: its certificate URL passes and names a file
    /// in the directory.
    pub fn offline(&self, msg: &SnsMessage) -> bool {
        validate_cert_url(&msg.signing_cert_url, &msg.topic_arn, &[])
            .is_ok_and(|url| self.files.contains(&url.file_name))
    }

    pub fn verify(&self, verifier: &Verifier, msg: &SnsMessage) -> Result<(), Rejection> {
        assert!(self.offline(msg), "verify() would download a certificate");
        self.runtime.block_on(verifier.verify(msg))
    }
}

/// The JSON body SNS would send for a parsed message (unsigned extras left out).
pub fn to_json(msg: &SnsMessage) -> serde_json::Value {
    let mut fields = serde_json::Map::new();
    let mut put = |name: &str, value: &str| {
        fields.insert(name.to_owned(), value.into());
    };
    put("Type", msg.message_type.as_str());
    put("MessageId", &msg.message_id);
    put("TopicArn", msg.topic_arn.as_str());
    if let Some(subject) = &msg.subject {
        put("Subject", subject);
    }
    put("Message", &msg.message);
    put("Timestamp", &msg.timestamp_raw);
    put("SignatureVersion", &msg.signature_version);
    put("Signature", &msg.signature);
    put("SigningCertURL", &msg.signing_cert_url);
    if let Some(token) = &msg.token {
        put("Token", token);
    }
    if let Some(url) = &msg.subscribe_url {
        put("SubscribeURL", url);
    }
    serde_json::Value::Object(fields)
}

/// The signed fields of a message of this type, as SNS documents them.
pub fn signed_fields(msg: &SnsMessage) -> &'static [&'static str] {
    if msg.token.is_some() {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    }
}

/// The message with one signed field changed (added when it was absent, like a Subject).
/// The change keeps the field parseable where it can: a MessageId stays printable ASCII,
/// a Timestamp names the same instant differently, a TopicArn stays in its region.
pub fn tampered(msg: &SnsMessage, field: &str) -> Option<SnsMessage> {
    let mut json = to_json(msg);
    let fields = json.as_object_mut().unwrap();
    let current = fields
        .get(field)
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let changed = match (field, current) {
        ("Type", Some(t)) => match t.as_str() {
            "SubscriptionConfirmation" => "UnsubscribeConfirmation".to_owned(),
            "UnsubscribeConfirmation" => "SubscriptionConfirmation".to_owned(),
            _ => return None,
        },
        ("MessageId", Some(id)) if id.len() < 128 => format!("{id}x"),
        ("MessageId", Some(id)) => format!("x{}", &id[1..]),
        ("Timestamp", Some(_)) => msg
            .timestamp
            .format("%Y-%m-%dT%H:%M:%S%.9f+00:00")
            .to_string(),
        ("TopicArn", Some(_)) => {
            let other = if msg.topic_arn.account() == "210987654321" {
                "123456789012"
            } else {
                "210987654321"
            };
            format!(
                "arn:{}:sns:{}:{other}:x",
                msg.topic_arn.partition(),
                msg.topic_arn.region()
            )
        }
        (_, Some(value)) => format!("{value}x"),
        (_, None) => "x".to_owned(),
    };
    if fields.get(field).and_then(|v| v.as_str()) == Some(changed.as_str()) {
        return None;
    }
    fields.insert(field.to_owned(), changed.into());
    let tampered = SnsMessage::parse(json.to_string().as_bytes()).ok()?;
    // The Timestamp change must name the same instant, or the property tests freshness instead.
    assert_eq!(tampered.timestamp, msg.timestamp);
    Some(tampered)
}
