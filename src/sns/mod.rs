//! The SNS front door: strict parsing, authentication and subscription confirmation.

pub mod cert_url;
pub mod certs;
pub mod confirm;
pub mod message;
pub mod verify;

/// At most `max` characters of a text that came from outside, for logs and answers.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Why a delivery was refused. Each variant has a stable code (`api::ErrorCode`) that
/// operators can count and alert on; the code's status tells SNS whether to retry (5xx)
/// or give up (4xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("HTTP Basic authentication required")]
    Unauthorized,
    #[error("body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("raw message delivery cannot be authenticated; disable RawMessageDelivery")]
    RawDelivery,
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    SigningCertUrl(String),
    #[error("{0}")]
    SubscribeUrl(String),
    #[error("topic {0} is not in RESTOP_TOPIC_ARNS")]
    TopicNotAllowed(String),
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    FromTheFuture(String),
    #[error("{0}")]
    Certificate(String),
    #[error("{0}")]
    Signature(String),
    #[error("{0}")]
    CertificateUnavailable(String),
}
