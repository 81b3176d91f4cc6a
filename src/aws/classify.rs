//! SDK errors sorted into [`AwsFailure`] kinds: what restop should do about each, and how
//! an operator should read it.

use std::fmt;

use aws_sdk_rds::config::http::HttpResponse;
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};

use super::AwsFailure;

/// The `action` of a failure to get credentials, until `SdkAws::in_account` names the role.
pub(super) const CREDENTIALS: &str = "credentials";

/// Sorts an SDK error by what the engine should do about it. `action` names the IAM
/// action, for AccessDenied messages.
pub(super) fn failure<E>(error: SdkError<E, HttpResponse>, action: &str) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(credentials) = credentials_failure(&error) {
        return credentials;
    }
    if matches!(
        error,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) {
        return AwsFailure::Transient(format!("{action}: {}", error_chain(&error)));
    }
    let http_status = error.raw_response().map(|r| r.status().as_u16());
    let message = error.message().unwrap_or_default();
    let Some(code) = error.code() else {
        return match http_status {
            Some(status) if status >= 500 => {
                AwsFailure::Transient(format!("{action}: HTTP {status}"))
            }
            _ => AwsFailure::Other(format!("{action}: {}", error_chain(&error))),
        };
    };
    classify_code(
        code,
        http_status,
        action,
        format!("{action}: {code}: {message}"),
    )
}

/// A call that failed because its credentials could not be had: none at all, or a role
/// that refused to be assumed, is for an operator to fix; anything else passes.
fn credentials_failure(error: &(dyn std::error::Error + 'static)) -> Option<AwsFailure> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            let text = error_chain(credentials);
            let refused = match credentials {
                CredentialsError::CredentialsNotLoaded(_) => {
                    return Some(AwsFailure::NoCredentials);
                }
                CredentialsError::InvalidConfiguration(_) => true,
                CredentialsError::ProviderError(_) => {
                    text.contains("AccessDenied") || text.contains("not authorized")
                }
                _ => false,
            };
            return Some(if refused {
                AwsFailure::AccessDenied {
                    action: CREDENTIALS.into(),
                    message: text,
                }
            } else {
                AwsFailure::Transient(format!("credentials: {text}"))
            });
        }
        source = e.source();
    }
    None
}

/// What an AWS error code means for restop.
fn classify_code(
    code: &str,
    http_status: Option<u16>,
    action: &str,
    described: String,
) -> AwsFailure {
    match code {
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => {
            AwsFailure::Throttled(described)
        }
        // Credentials that expired or a clock that drifted: the SDK refreshes
        // credentials and re-signs on the next attempt, so these pass.
        "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        // Step Functions' limit on open executions: others will finish.
        | "ExecutionLimitExceeded" => AwsFailure::Transient(described),
        "InvalidDBInstanceState" | "InvalidDBInstanceStateFault" | "InvalidDBClusterStateFault" => {
            AwsFailure::InvalidState(described)
        }
        "DBInstanceNotFound"
        | "DBInstanceNotFoundFault"
        | "DBClusterNotFoundFault"
        | "DBClusterNotFound"
        | "ExecutionDoesNotExist" => AwsFailure::NotFound,
        "InvalidParameterCombination" => AwsFailure::InvalidParameterCombination(described),
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
        | "AuthorizationError" => AwsFailure::AccessDenied {
            action: action.to_owned(),
            message: described,
        },
        _ if http_status.is_some_and(|s| s >= 500) => AwsFailure::Transient(described),
        _ => AwsFailure::Other(described),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An SDK error in one line, as an operator should read it: missing credentials said so,
/// AWS's code and message when AWS sent them, else the chain of causes (never the SDK's
/// debug dump).
pub fn explain<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    if credentials_failure(error) == Some(AwsFailure::NoCredentials) {
        return AwsFailure::NoCredentials.to_string();
    }
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => error_chain(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_clock_and_limit_errors_pass() {
        for code in [
            "ExpiredToken",
            "RequestExpired",
            "SignatureDoesNotMatch",
            "InvalidClientTokenId",
            "ExecutionLimitExceeded",
        ] {
            assert!(
                matches!(
                    classify_code(code, Some(400), "rds:StopDBInstance", code.into()),
                    AwsFailure::Transient(_)
                ),
                "{code}"
            );
        }
        for code in ["Throttling", "ThrottlingException"] {
            assert!(matches!(
                classify_code(code, Some(400), "rds:DescribeDBInstances", code.into()),
                AwsFailure::Throttled(_)
            ));
        }
        assert!(matches!(
            classify_code(
                "AccessDenied",
                Some(403),
                "rds:StopDBInstance",
                String::new()
            ),
            AwsFailure::AccessDenied { .. }
        ));
        assert_eq!(
            classify_code(
                "ExecutionDoesNotExist",
                Some(400),
                "states:StopExecution",
                String::new()
            ),
            AwsFailure::NotFound
        );
        assert!(matches!(
            classify_code("SomethingElse", Some(400), "x", String::new()),
            AwsFailure::Other(_)
        ));
    }

    /// What `restop doctor` and the engine say when the SDK found no credentials at all.
    #[test]
    fn missing_credentials_read_as_one_line() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_sdk_rds::error::ConnectorError;
        use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;

        let none = || -> SdkError<GetCallerIdentityError, HttpResponse> {
            let source = CredentialsError::not_loaded("no providers in chain provided credentials");
            SdkError::dispatch_failure(ConnectorError::other(Box::new(source), None))
        };
        assert_eq!(
            failure(none(), "sts:GetCallerIdentity"),
            AwsFailure::NoCredentials
        );
        let line = explain(&none());
        assert_eq!(
            line,
            "no AWS credentials found (environment, profile, container, instance); set \
             AWS_PROFILE or give restop a role"
        );
        assert_eq!(AwsFailure::NoCredentials.to_string(), line);
    }
}
