//! Proves that a parsed message comes from SNS: signing certificate URL, topic, freshness,
//! certificate and signature. Cheap checks run first, so forged or unwanted messages never
//! cause a certificate download.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier as RsaVerifier;

use super::Rejection;
use super::cert_url::{ExtraHost, validate_cert_url, validate_subscribe_url};
use super::certs::{CertError, CertStore};
use super::message::SnsMessage;
use crate::aws::arn::TopicArn;
use crate::clock::Clock;
use crate::execution::MessageType;

pub struct Verifier {
    /// The topics whose messages restop accepts; empty refuses every message.
    pub allowed_topics: Vec<TopicArn>,
    pub extra_hosts: Vec<ExtraHost>,
    pub max_age: Duration,
    pub max_future_skew: Duration,
    /// Messages signed with an older SignatureVersion are refused
    /// (RESTOP_SNS_MIN_SIGNATURE_VERSION).
    pub min_signature_version: u8,
    pub certs: CertStore,
    pub clock: Arc<dyn Clock>,
}

impl Verifier {
    pub fn is_topic_allowed(&self, topic: &TopicArn) -> bool {
        self.allowed_topics.contains(topic)
    }

    pub async fn verify(&self, msg: &SnsMessage) -> Result<(), Rejection> {
        let cert_url = validate_cert_url(&msg.signing_cert_url, &msg.topic_arn, &self.extra_hosts)
            .map_err(Rejection::SigningCertUrl)?;
        if let (Some(url), Some(token)) = (&msg.subscribe_url, &msg.token)
            && msg.message_type == MessageType::SubscriptionConfirmation
        {
            validate_subscribe_url(url, &msg.topic_arn, token, &self.extra_hosts)
                .map_err(Rejection::SubscribeUrl)?;
        }
        if !self.is_topic_allowed(&msg.topic_arn) {
            return Err(Rejection::TopicNotAllowed(super::shorten(
                msg.topic_arn.as_str(),
                128,
            )));
        }
        self.check_freshness(msg)?;
        let (version, digest) = match msg.signature_version.as_str() {
            "1" => (1, MessageDigest::sha1()),
            "2" => (2, MessageDigest::sha256()),
            other => {
                return Err(Rejection::Signature(format!(
                    "unsupported SignatureVersion '{}'",
                    other.chars().take(8).collect::<String>()
                )));
            }
        };
        // Before any certificate download: the version alone decides.
        if version < self.min_signature_version {
            return Err(Rejection::SignatureVersion(format!(
                "SignatureVersion {version} is below RESTOP_SNS_MIN_SIGNATURE_VERSION={}",
                self.min_signature_version
            )));
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&msg.signature)
            .map_err(|_| Rejection::Signature("Signature is not base64".into()))?;

        let cert = self.certs.get(&cert_url).await.map_err(|e| match e {
            CertError::Unavailable(e) => Rejection::CertificateUnavailable(e),
            CertError::Invalid(e) => Rejection::Certificate(e),
        })?;
        if !cert.is_sns_signer_for(msg.topic_arn.region()) {
            return Err(Rejection::Certificate(format!(
                "certificate names {:?}, not an SNS signing identity",
                cert.names
            )));
        }
        if !cert.is_valid_at(msg.timestamp) {
            return Err(Rejection::Certificate(format!(
                "certificate valid {} to {}, not at the message's Timestamp",
                cert.not_before, cert.not_after
            )));
        }

        let verified = RsaVerifier::new(digest, &cert.public_key)
            .and_then(|mut v| v.verify_oneshot(&signature, msg.string_to_sign().as_bytes()))
            .unwrap_or(false);
        if verified {
            Ok(())
        } else {
            Err(Rejection::Signature(
                "signature does not match the message".into(),
            ))
        }
    }

    fn check_freshness(&self, msg: &SnsMessage) -> Result<(), Rejection> {
        let now = self.clock.now();
        let age = now.signed_duration_since(msg.timestamp);
        if age.to_std().is_ok_and(|age| age > self.max_age) {
            return Err(Rejection::Stale(format!(
                "Timestamp {} is older than {}s",
                msg.timestamp_raw,
                self.max_age.as_secs()
            )));
        }
        if (-age)
            .to_std()
            .is_ok_and(|ahead| ahead > self.max_future_skew)
        {
            return Err(Rejection::FromTheFuture(format!(
                "Timestamp {} is more than {}s ahead",
                msg.timestamp_raw,
                self.max_future_skew.as_secs()
            )));
        }
        Ok(())
    }
}
