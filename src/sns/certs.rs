//! SNS signing certificates: taken from the operator's directory or fetched over verified
//! TLS, parsed once, and cached by URL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use openssl::pkey::{PKey, Public};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::cert_url::CertUrl;
use crate::clock::Clock;
use crate::http::{FetchError, fetch_limited};

/// A certificate body larger than this is not an SNS signing certificate.
const MAX_CERT_BYTES: usize = 16 * 1024;
const CACHE_CAPACITY: u64 = 256;
/// AWS rotates the certificate about yearly under a new URL; a day bounds a stale entry.
const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// A load that failed for now is remembered this long, so that a burst of deliveries does
/// not fetch a failing URL again and again. Well below SNS's 20 s between retries, so a
/// retry gets a fresh try.
const FAILURE_TTL: Duration = Duration::from_secs(10);

/// The parts of a signing certificate restop needs.
#[derive(Debug)]
pub struct SigningCert {
    pub public_key: PKey<Public>,
    /// DNS names from the subject alternative names and the common name.
    pub names: Vec<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CertError {
    /// The certificate could not be had for now; SNS should retry.
    #[error("signing certificate unavailable: {0}")]
    Unavailable(String),
    /// What was served or stored is not an acceptable certificate.
    #[error("invalid signing certificate: {0}")]
    Invalid(String),
}

pub struct CertStore {
    dir: Option<PathBuf>,
    client: reqwest::Client,
    cache: moka::future::Cache<String, Arc<SigningCert>>,
    /// Recent failures by URL, with when they happened.
    failures: Mutex<HashMap<String, (CertError, DateTime<Utc>)>>,
    clock: Arc<dyn Clock>,
}

impl CertStore {
    pub fn new(dir: Option<PathBuf>, client: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self {
            dir,
            client,
            cache: moka::future::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(CACHE_TTL)
                .build(),
            failures: Mutex::default(),
            clock,
        }
    }

    /// The certificate behind a validated URL. Concurrent callers for one URL share one
    /// load; a passing failure is remembered for a few seconds only.
    pub async fn get(&self, cert_url: &CertUrl) -> Result<Arc<SigningCert>, CertError> {
        let key = cert_url.url.to_string();
        if let Some(failure) = self.recent_failure(&key) {
            return Err(failure);
        }
        let loaded = self
            .cache
            .try_get_with(key.clone(), self.load(cert_url))
            .await
            .map_err(|e| (*e).clone());
        // Only passing trouble is remembered: an invalid certificate is refused for good.
        if let Err(failure @ CertError::Unavailable(_)) = &loaded {
            let now = self.clock.now();
            let mut failures = self.failures.lock().expect("failure cache");
            failures.retain(|_, (_, at)| !expired(*at, now));
            if failures.len() < CACHE_CAPACITY as usize {
                failures.insert(key, (failure.clone(), now));
            }
        }
        loaded
    }

    fn recent_failure(&self, key: &str) -> Option<CertError> {
        let now = self.clock.now();
        let failures = self.failures.lock().expect("failure cache");
        failures
            .get(key)
            .filter(|(_, at)| !expired(*at, now))
            .map(|(failure, _)| failure.clone())
    }

    async fn load(&self, cert_url: &CertUrl) -> Result<Arc<SigningCert>, CertError> {
        if let Some(dir) = &self.dir {
            let path = dir.join(&cert_url.file_name);
            match tokio::fs::read(&path).await {
                Ok(pem) => {
                    tracing::debug!(path = %path.display(), "signing certificate read from disk");
                    // A truncated or half-written file is the operator's to fix: SNS
                    // retries meanwhile instead of dropping the message.
                    return parse_signing_cert(&pem)
                        .map(Arc::new)
                        .map_err(|e| CertError::Unavailable(format!("{}: {e}", path.display())));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CertError::Unavailable(format!("{}: {e}", path.display())));
                }
            }
        }
        let body = fetch_limited(&self.client, cert_url.url.clone(), MAX_CERT_BYTES)
            .await
            .map_err(|e| match e {
                FetchError::Transient(e) => CertError::Unavailable(e),
                FetchError::Refused(e) => CertError::Invalid(e),
            })?;
        tracing::info!(url = %cert_url.url, "signing certificate fetched");
        parse_signing_cert(&body)
            .map(Arc::new)
            .map_err(CertError::Invalid)
    }
}

fn expired(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - at).to_std().is_ok_and(|age| age >= FAILURE_TTL)
}

/// Parses a body that must be exactly one PEM certificate and nothing else.
pub fn parse_signing_cert(body: &[u8]) -> Result<SigningCert, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(body).map_err(|_| "certificate is not text")?;
    let text = text.trim();
    if !text.starts_with(BEGIN) || !text.ends_with(END) || text.matches(BEGIN).count() != 1 {
        return Err("body is not exactly one PEM certificate".into());
    }
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|e| format!("bad PEM: {e}"))?;
    let (rest, cert) =
        X509Certificate::from_der(&pem.contents).map_err(|e| format!("bad certificate: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }

    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            names.push(cn.to_ascii_lowercase());
        }
    }

    let public_key = PKey::public_key_from_der(cert.public_key().raw)
        .map_err(|e| format!("unusable public key: {e}"))?;
    let rsa_bits = public_key.rsa().map(|rsa| rsa.size() * 8).unwrap_or(0);
    if rsa_bits < 2048 {
        return Err("public key is not an RSA key of at least 2048 bits".into());
    }
    let time = |t: x509_parser::time::ASN1Time| {
        DateTime::from_timestamp(t.timestamp(), 0).ok_or("certificate validity out of range")
    };
    Ok(SigningCert {
        public_key,
        names,
        not_before: time(cert.validity().not_before)?,
        not_after: time(cert.validity().not_after)?,
    })
}

impl SigningCert {
    /// True when the certificate names an SNS signing identity for `region`.
    pub fn is_sns_signer_for(&self, region: &str) -> bool {
        self.names
            .iter()
            .any(|name| is_sns_signing_name(name, region))
    }

    pub fn is_valid_at(&self, at: DateTime<Utc>) -> bool {
        self.not_before <= at && at <= self.not_after
    }
}

/// The names a genuine signing certificate for `region` carries, as AWS's own SDK expects
/// them (`SnsHostProvider` in the AWS SDK for Java v2): in the `aws` partition
/// `sns.amazonaws.com` or, in newer regions, `sns-signing.<region>.amazonaws.com` (both
/// are accepted, so a region that moves to the second keeps working); in China
/// `sns-cn-north-1.amazonaws.com.cn` / `sns-cn-northwest-1.amazonaws.com.cn`; in GovCloud
/// `sns-us-gov-west-1.amazonaws.com` for both regions. Other partitions (ISO, EUSC) are
/// refused: their signing names are not published, so no certificate there is trusted
/// (the SDK's fallback, `sns.` and the partition's domain, is a guess restop does not make).
fn is_sns_signing_name(name: &str, region: &str) -> bool {
    match crate::aws::arn::partition_of(region) {
        Some("aws") => {
            name == "sns.amazonaws.com" || name == format!("sns-signing.{region}.amazonaws.com")
        }
        Some("aws-cn") => match region {
            "cn-north-1" | "cn-northwest-1" => name == format!("sns-{region}.amazonaws.com.cn"),
            _ => name == "sns.amazonaws.com.cn",
        },
        Some("aws-us-gov") => name == "sns-us-gov-west-1.amazonaws.com",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_names_by_partition() {
        let accepted = [
            ("sns.amazonaws.com", "us-east-1"),
            ("sns-signing.ap-east-2.amazonaws.com", "ap-east-2"),
            ("sns-cn-north-1.amazonaws.com.cn", "cn-north-1"),
            ("sns-cn-northwest-1.amazonaws.com.cn", "cn-northwest-1"),
            ("sns-us-gov-west-1.amazonaws.com", "us-gov-west-1"),
            ("sns-us-gov-west-1.amazonaws.com", "us-gov-east-1"),
        ];
        for (name, region) in accepted {
            assert!(is_sns_signing_name(name, region), "{name} for {region}");
        }
        let refused = [
            ("sns-signing.eu-west-1.amazonaws.com", "us-east-1"),
            ("sns.us-east-1.amazonaws.com", "us-east-1"),
            ("s3.amazonaws.com", "us-east-1"),
            ("sns.amazonaws.com.evil.com", "us-east-1"),
            // The names an earlier version guessed for China and GovCloud.
            ("sns.cn-north-1.amazonaws.com.cn", "cn-north-1"),
            ("sns-signing.cn-north-1.amazonaws.com.cn", "cn-north-1"),
            ("sns.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
            ("sns-us-gov-east-1.amazonaws.com", "us-gov-east-1"),
            // Another partition's name.
            ("sns.amazonaws.com", "cn-north-1"),
            ("sns-cn-north-1.amazonaws.com.cn", "cn-northwest-1"),
        ];
        for (name, region) in refused {
            assert!(!is_sns_signing_name(name, region), "{name} for {region}");
        }
    }

    #[test]
    fn only_a_lone_pem_certificate_is_accepted() {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/sns/certs/2025-amazon-rsa2048-m01_SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
        ))
        .expect("shared fixtures beside the checkout");
        let cert = parse_signing_cert(pem.as_bytes()).unwrap();
        assert!(cert.is_sns_signer_for("us-west-2"));

        assert!(parse_signing_cert(format!("hello\n{pem}").as_bytes()).is_err());
        assert!(parse_signing_cert(format!("{pem}\n{pem}").as_bytes()).is_err());
        assert!(parse_signing_cert(format!("{pem}<html>").as_bytes()).is_err());
        assert!(parse_signing_cert(b"").is_err());
    }
}
