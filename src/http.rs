//! Outbound HTTP for SNS: certificate downloads and subscription confirmations.

use std::time::Duration;

use url::Url;

/// SNS gives up on a delivery after 15 s; an outbound call must end well before that.
const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(5);

/// One client for all SNS calls: verified TLS, no redirects, short timeouts.
pub fn sns_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(OUTBOUND_TIMEOUT)
        .connect_timeout(OUTBOUND_TIMEOUT)
        .user_agent(concat!("restop/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("TLS backend initialises")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Network trouble or a 5xx: worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// The server answered, but not with what we accept.
    #[error("{0}")]
    Refused(String),
}

/// GETs `url` and returns its body if the answer is 200 and at most `max_bytes` long.
pub async fn fetch_limited(
    client: &reqwest::Client,
    url: Url,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| FetchError::Transient(format!("GET {host} failed: {}", error_chain(e))))?;
    let status = response.status();
    // 403 and 404 too: a certificate host answers them while a new certificate is being
    // published, and an error that sticks would make SNS drop genuine messages.
    let passing = matches!(status.as_u16(), 403 | 404 | 408 | 429);
    if status.is_server_error() || passing {
        return Err(FetchError::Transient(format!("{host} answered {status}")));
    }
    if status != reqwest::StatusCode::OK {
        return Err(FetchError::Refused(format!("{host} answered {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::Transient(format!("reading from {host}: {}", error_chain(e))))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(FetchError::Refused(format!(
                "{host} sent more than {max_bytes} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes, without the URL (which may hold a token).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
