//! The SNS front door: strict parsing, authentication and subscription confirmation.

pub mod cert_url;
pub mod certs;
pub mod confirm;
pub mod message;
pub mod verify;

use axum::http::StatusCode;

/// Why a delivery was refused. Each variant has a stable `code` that operators can count
/// and alert on, and a status that tells SNS whether to retry (5xx) or give up (4xx).
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

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BodyTooLarge(_) => "body_too_large",
            Self::RawDelivery => "raw_delivery",
            Self::Malformed(_) => "malformed_message",
            Self::SigningCertUrl(_) => "invalid_signing_cert_url",
            Self::SubscribeUrl(_) => "invalid_subscribe_url",
            Self::TopicNotAllowed(_) => "topic_not_allowed",
            Self::Stale(_) => "stale_message",
            Self::FromTheFuture(_) => "future_message",
            Self::Certificate(_) => "invalid_certificate",
            Self::Signature(_) => "invalid_signature",
            Self::CertificateUnavailable(_) => "certificate_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RawDelivery | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::CertificateUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        }
    }
}
