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
    SignatureVersion(String),
    #[error("{0}")]
    CertificateUnavailable(String),
}

impl Rejection {
    /// What the sender is told: the same for every message refused this way. The detail
    /// (paths, OS and network errors) goes to the log only.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::Unauthorized => "HTTP Basic authentication required",
            Self::BodyTooLarge(_) => "body too large",
            Self::RawDelivery => {
                "raw message delivery cannot be authenticated; disable RawMessageDelivery"
            }
            Self::Malformed(_) => "not a well-formed SNS message",
            Self::SigningCertUrl(_) => "SigningCertURL is not an SNS certificate URL",
            Self::SubscribeUrl(_) => "SubscribeURL is not an SNS URL",
            Self::TopicNotAllowed(_) => "topic is not in RESTOP_TOPIC_ARNS",
            Self::Stale(_) => "message is too old",
            Self::FromTheFuture(_) => "message is dated in the future",
            Self::Certificate(_) => "signing certificate is not acceptable",
            Self::Signature(_) => "signature does not verify",
            Self::SignatureVersion(_) => {
                "SignatureVersion 1 (SHA1) is refused here; set the topic's SignatureVersion to 2"
            }
            Self::CertificateUnavailable(_) => {
                "signing certificate is unavailable right now; try again later"
            }
        }
    }
}
