//! The one error shape every route answers with: `{"error":{"code":"...","message":"..."}}`,
//! and the one list of codes (`openapi.yaml` lists the same ones; a test compares them).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::execution::text_enum;
use crate::sns::Rejection;
use crate::store::StoreError;

text_enum! {
    /// A stable, machine-readable error code.
    pub enum ErrorCode {
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        Unauthorized = "unauthorized",
        InvalidParameter = "invalid_parameter",
        InvalidRequest = "invalid_request",
        UnsupportedMediaType = "unsupported_media_type",
        ExecutionActive = "execution_active",
        ExecutionFinished = "execution_finished",
        ResourceNotFound = "resource_not_found",
        AccountNotAllowed = "account_not_allowed",
        AwsUnavailable = "aws_unavailable",
        StorageUnavailable = "storage_unavailable",
        Timeout = "timeout",
        // Refused SNS deliveries.
        BodyTooLarge = "body_too_large",
        RawDelivery = "raw_delivery",
        MalformedMessage = "malformed_message",
        InvalidSigningCertUrl = "invalid_signing_cert_url",
        InvalidSubscribeUrl = "invalid_subscribe_url",
        TopicNotAllowed = "topic_not_allowed",
        StaleMessage = "stale_message",
        FutureMessage = "future_message",
        InvalidCertificate = "invalid_certificate",
        InvalidSignature = "invalid_signature",
        SignatureVersionRefused = "signature_version_refused",
        CertificateUnavailable = "certificate_unavailable",
        ConfirmationFailed = "confirmation_failed",
        Overloaded = "overloaded",
    }
}

impl ErrorCode {
    /// The HTTP status every answer with this code has.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidParameter
            | Self::InvalidRequest
            | Self::RawDelivery
            | Self::MalformedMessage => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::AccountNotAllowed
            | Self::InvalidSigningCertUrl
            | Self::InvalidSubscribeUrl
            | Self::TopicNotAllowed
            | Self::StaleMessage
            | Self::FutureMessage
            | Self::InvalidCertificate
            | Self::InvalidSignature
            | Self::SignatureVersionRefused => StatusCode::FORBIDDEN,
            Self::NotFound | Self::ResourceNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::ExecutionActive | Self::ExecutionFinished => StatusCode::CONFLICT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::AwsUnavailable
            | Self::StorageUnavailable
            | Self::Timeout
            | Self::CertificateUnavailable
            | Self::ConfirmationFailed
            | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every reason `POST /sns` refuses a delivery for (`restop_sns_refusals_total`).
    pub const SNS_REFUSALS: &[ErrorCode] = &[
        Self::Unauthorized,
        Self::BodyTooLarge,
        Self::RawDelivery,
        Self::MalformedMessage,
        Self::InvalidSigningCertUrl,
        Self::InvalidSubscribeUrl,
        Self::TopicNotAllowed,
        Self::StaleMessage,
        Self::FutureMessage,
        Self::InvalidCertificate,
        Self::InvalidSignature,
        Self::SignatureVersionRefused,
        Self::CertificateUnavailable,
        Self::StorageUnavailable,
        Self::ConfirmationFailed,
        Self::Overloaded,
        Self::Timeout,
    ];
}

impl From<&Rejection> for ErrorCode {
    fn from(rejection: &Rejection) -> Self {
        match rejection {
            Rejection::Unauthorized => Self::Unauthorized,
            Rejection::BodyTooLarge(_) => Self::BodyTooLarge,
            Rejection::RawDelivery => Self::RawDelivery,
            Rejection::Malformed(_) => Self::MalformedMessage,
            Rejection::SigningCertUrl(_) => Self::InvalidSigningCertUrl,
            Rejection::SubscribeUrl(_) => Self::InvalidSubscribeUrl,
            Rejection::TopicNotAllowed(_) => Self::TopicNotAllowed,
            Rejection::Stale(_) => Self::StaleMessage,
            Rejection::FromTheFuture(_) => Self::FutureMessage,
            Rejection::Certificate(_) => Self::InvalidCertificate,
            Rejection::Signature(_) => Self::InvalidSignature,
            Rejection::SignatureVersion(_) => Self::SignatureVersionRefused,
            Rejection::CertificateUnavailable(_) => Self::CertificateUnavailable,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// On a conflict: the execution that is in the way.
    pub execution_id: Option<String>,
}

impl ApiError {
    /// An answer with `code`, whose status it has.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            execution_id: None,
        }
    }

    pub fn storage_unavailable() -> Self {
        Self::new(
            ErrorCode::StorageUnavailable,
            "the database is unavailable; retry later",
        )
    }
}

/// A database failure: logged here with its cause, answered without it.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = %error, "database request failed");
        Self::storage_unavailable()
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_id: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                execution_id: self.execution_id.as_deref(),
            },
        };
        (self.code.status(), Json(body)).into_response()
    }
}

pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
