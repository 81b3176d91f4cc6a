//! A stand-in for Amazon SNS: a signing key and certificate of our own, served from a local
//! HTTP server that also answers subscription confirmations and records every request.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509NameBuilder};
use serde_json::{Value, json};

pub const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:rds-events";
pub const CERT_HASH: &str = "0123456789abcdef0123456789abcdef";

/// A key and a certificate for it, like SNS's signing certificate.
pub struct SigningKey {
    pub key: PKey<Private>,
    pub cert_pem: String,
}

impl SigningKey {
    /// `name` goes into the CN and the SAN; the certificate is valid from
    /// `not_before` to `not_after`.
    pub fn generate(name: &str, not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> Self {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut subject = X509NameBuilder::new().unwrap();
        subject.append_entry_by_text("CN", name).unwrap();
        let subject = subject.build();
        let mut builder = X509::builder().unwrap();
        builder.set_version(2).unwrap();
        let serial = BigNum::from_u32(rand_u32())
            .unwrap()
            .to_asn1_integer()
            .unwrap();
        builder.set_serial_number(&serial).unwrap();
        builder.set_subject_name(&subject).unwrap();
        builder.set_issuer_name(&subject).unwrap();
        builder.set_pubkey(&key).unwrap();
        builder
            .set_not_before(&Asn1Time::from_unix(not_before.timestamp()).unwrap())
            .unwrap();
        builder
            .set_not_after(&Asn1Time::from_unix(not_after.timestamp()).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .dns(name)
            .build(&builder.x509v3_context(None, None))
            .unwrap();
        builder.append_extension(san).unwrap();
        builder.sign(&key, MessageDigest::sha256()).unwrap();
        let cert_pem = String::from_utf8(builder.build().to_pem().unwrap()).unwrap();
        Self { key, cert_pem }
    }

    /// A certificate like the real one: `sns.amazonaws.com`, valid around now.
    pub fn sns_like() -> Self {
        let now = Utc::now();
        Self::generate(
            "sns.amazonaws.com",
            now - chrono::Duration::days(30),
            now + chrono::Duration::days(335),
        )
    }

    /// Signs `message` in place (fields as SNS would send them), with `SignatureVersion`
    /// taken from the message (default "2").
    pub fn sign(&self, message: &mut Value) {
        let fields = message.as_object_mut().expect("an object");
        let version = fields
            .entry("SignatureVersion")
            .or_insert_with(|| "2".into())
            .as_str()
            .unwrap()
            .to_owned();
        let digest = if version == "1" {
            MessageDigest::sha1()
        } else {
            MessageDigest::sha256()
        };
        let mut signer = Signer::new(digest, &self.key).unwrap();
        signer.update(string_to_sign(fields).as_bytes()).unwrap();
        let signature =
            base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().unwrap());
        fields.insert("Signature".into(), signature.into());
    }
}

/// Written from the SNS documentation, independently of restop's own implementation.
fn string_to_sign(fields: &serde_json::Map<String, Value>) -> String {
    let names: &[&str] = match fields["Type"].as_str().unwrap() {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        _ => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
    };
    names
        .iter()
        .filter_map(|name| {
            fields
                .get(*name)
                .map(|v| format!("{name}\n{}\n", v.as_str().unwrap()))
        })
        .collect()
}

fn rand_u32() -> u32 {
    let mut bytes = [0u8; 4];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    u32::from_le_bytes(bytes) >> 1
}

pub fn sns_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What the fake SNS server serves, and what it has seen.
#[derive(Default)]
pub struct StubState {
    pub cert_body: String,
    pub cert_status: u16,
    pub confirm_status: u16,
    pub cert_fetches: usize,
    /// How long a certificate download takes.
    pub cert_delay: std::time::Duration,
    /// The raw query string of every confirmation GET.
    pub confirmations: Vec<String>,
}

pub struct SnsStub {
    pub host: String,
    pub signer: SigningKey,
    pub state: Arc<Mutex<StubState>>,
}

impl SnsStub {
    pub async fn start() -> Self {
        Self::start_with(SigningKey::sns_like()).await
    }

    pub async fn start_with(signer: SigningKey) -> Self {
        let state = Arc::new(Mutex::new(StubState {
            cert_body: signer.cert_pem.clone(),
            cert_status: 200,
            confirm_status: 200,
            ..StubState::default()
        }));
        let app = Router::new()
            .route("/", get(confirm))
            .route("/{file}", get(cert))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            host,
            signer,
            state,
        }
    }

    pub fn cert_url(&self) -> String {
        format!(
            "http://{}/SimpleNotificationService-{CERT_HASH}.pem",
            self.host
        )
    }

    pub fn subscribe_url(&self, topic: &str, token: &str) -> String {
        format!(
            "http://{}/?Action=ConfirmSubscription&TopicArn={topic}&Token={token}",
            self.host
        )
    }

    pub fn cert_fetches(&self) -> usize {
        self.state.lock().unwrap().cert_fetches
    }

    pub fn confirmations(&self) -> Vec<String> {
        self.state.lock().unwrap().confirmations.clone()
    }

    pub fn set(&self, change: impl FnOnce(&mut StubState)) {
        change(&mut self.state.lock().unwrap());
    }

    /// An unsigned notification from [`TOPIC`], dated now.
    pub fn unsigned_notification(&self, message: &str) -> Value {
        self.unsigned_notification_on(TOPIC, message)
    }

    fn unsigned_notification_on(&self, topic: &str, message: &str) -> Value {
        json!({
            "Type": "Notification",
            "MessageId": uuid::Uuid::new_v4().to_string(),
            "TopicArn": topic,
            "Message": message,
            "Timestamp": sns_timestamp(Utc::now()),
            "SignatureVersion": "2",
            "SigningCertURL": self.cert_url(),
            "UnsubscribeURL": format!("http://{}/?Action=Unsubscribe&SubscriptionArn={topic}:x", self.host),
        })
    }

    pub fn notification(&self, message: &str) -> Value {
        self.notification_on(TOPIC, message)
    }

    /// A signed notification from `topic`.
    pub fn notification_on(&self, topic: &str, message: &str) -> Value {
        let mut msg = self.unsigned_notification_on(topic, message);
        self.signer.sign(&mut msg);
        msg
    }

    /// A signed notification carrying an RDS event-subscription message.
    pub fn rds_notification(&self, event_id: &str, source: &str, identifier: &str) -> Value {
        self.notification(&rds_event_message(event_id, source, identifier))
    }

    pub fn unsigned_confirmation(&self, kind: &str, token: &str) -> Value {
        json!({
            "Type": kind,
            "MessageId": uuid::Uuid::new_v4().to_string(),
            "Token": token,
            "TopicArn": TOPIC,
            "Message": format!("You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
            "SubscribeURL": self.subscribe_url(TOPIC, token),
            "Timestamp": sns_timestamp(Utc::now()),
            "SignatureVersion": "1",
            "SigningCertURL": self.cert_url(),
        })
    }

    pub fn confirmation(&self, kind: &str, token: &str) -> Value {
        let mut msg = self.unsigned_confirmation(kind, token);
        self.signer.sign(&mut msg);
        msg
    }
}

/// The SNS `Message` an RDS event subscription sends, about a resource of the test
/// account in us-east-1.
pub fn rds_event_message(event_id: &str, source: &str, identifier: &str) -> String {
    let kind = if source == "db-cluster" {
        "cluster"
    } else {
        "db"
    };
    rds_event_message_for(
        event_id,
        source,
        identifier,
        &format!("arn:aws:rds:us-east-1:123456789012:{kind}:{identifier}"),
    )
}

/// The same about the resource `arn`, which may be anyone's.
pub fn rds_event_message_for(event_id: &str, source: &str, identifier: &str, arn: &str) -> String {
    json!({
        "Event Source": source,
        "Event Time": "2026-11-26 07:22:41.245",
        "Identifier Link": format!("https://console.aws.amazon.com/rds/home?region=us-east-1#dbinstance:id={identifier}"),
        "Source ID": identifier,
        "Source ARN": arn,
        "Event ID": format!("http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#{event_id}"),
        "Event Message": "DB instance is being started due to it exceeding the maximum allowed time being stopped."
    })
    .to_string()
}

async fn cert(
    State(state): State<Arc<Mutex<StubState>>>,
    Path(file): Path<String>,
) -> impl IntoResponse {
    let (status, body, delay) = {
        let mut state = state.lock().unwrap();
        state.cert_fetches += 1;
        if file != format!("SimpleNotificationService-{CERT_HASH}.pem") {
            return (StatusCode::NOT_FOUND, String::new());
        }
        (state.cert_status, state.cert_body.clone(), state.cert_delay)
    };
    tokio::time::sleep(delay).await;
    (StatusCode::from_u16(status).unwrap(), body)
}

async fn confirm(
    State(state): State<Arc<Mutex<StubState>>>,
    RawQuery(query): RawQuery,
) -> impl IntoResponse {
    let mut state = state.lock().unwrap();
    let query = query.unwrap_or_default();
    state.confirmations.push(query.clone());
    let topic = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "TopicArn")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let body = format!(
        "<ConfirmSubscriptionResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
         <ConfirmSubscriptionResult><SubscriptionArn>{topic}:6f8b1a34-7d2c-4a5e-9b1d-2c3e4f5a6b7c</SubscriptionArn>\
         </ConfirmSubscriptionResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>\
         </ConfirmSubscriptionResponse>"
    );
    (StatusCode::from_u16(state.confirm_status).unwrap(), body)
}
