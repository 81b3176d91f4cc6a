//! SigningCertURL and SubscribeURL rules, and operator-trusted extra hosts.
//!
//! Properties: an accepted URL is exactly what was sent (canonical), https, on
//! `sns.<topic's region>.amazonaws.com[.cn]` with no port, userinfo or fragment, and a
//! certificate file name of the fixed shape with no query; or, only when an extra host is
//! trusted, on exactly that host and port, plain http only on loopback. An accepted
//! SubscribeURL has path `/` and exactly the message's Action, TopicArn and Token. An
//! extra host prints back as written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restop::aws::arn::TopicArn;
use restop::sns::cert_url::{ExtraHost, validate_cert_url, validate_subscribe_url};
use url::{Host, Url};

fn sns_host(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("sns.{region}.{domain}")
}

fn check_common(raw: &str, url: &Url, region: &str, extra: &[ExtraHost]) {
    assert_eq!(url.as_str(), raw, "accepted a URL that is not canonical");
    assert!(url.username().is_empty() && url.password().is_none() && url.fragment().is_none());
    let on_extra = extra.iter().any(|h| {
        let text = h.to_string();
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        text == authority
    });
    if on_extra {
        let host = url.host_str().unwrap().trim_matches(['[', ']']);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        assert!(
            url.scheme() == "https" || (url.scheme() == "http" && loopback),
            "{raw} on {extra:?}"
        );
    } else {
        assert_eq!(url.scheme(), "https", "{raw}");
        assert_eq!(url.port(), None, "{raw}");
        assert_eq!(
            url.host(),
            Some(Host::Domain(sns_host(region).as_str())),
            "{raw}"
        );
    }
}

/// The input is four lines: the topic's region, an extra host (may be empty), the
/// message's Token, and the URL (the rest).
fn run(input: &str) {
    let mut lines = input.splitn(4, '\n');
    let (Some(region), Some(extra_text), Some(token), Some(raw)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let Some(partition) = restop::aws::arn::partition_of(region) else {
        return;
    };
    let topic: TopicArn = format!("arn:{partition}:sns:{region}:123456789012:rds-events")
        .parse()
        .unwrap();
    let extra: Vec<ExtraHost> = match extra_text.parse::<ExtraHost>() {
        Ok(host) => {
            // Printed back as written (lowercased), and parsed again to the same host.
            assert_eq!(host.to_string(), extra_text.to_ascii_lowercase());
            assert_eq!(host.to_string().parse::<ExtraHost>(), Ok(host.clone()));
            vec![host]
        }
        Err(_) => Vec::new(),
    };

    if let Ok(cert) = validate_cert_url(raw, &topic, &extra) {
        check_common(raw, &cert.url, region, &extra);
        assert_eq!(cert.url.query(), None);
        assert_eq!(cert.url.path(), format!("/{}", cert.file_name));
        let hash = cert
            .file_name
            .strip_prefix("SimpleNotificationService-")
            .and_then(|n| n.strip_suffix(".pem"))
            .unwrap();
        assert!(
            hash.len() == 32
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
    if let Ok(url) = validate_subscribe_url(raw, &topic, token, &extra) {
        check_common(raw, &url, region, &extra);
        assert_eq!(url.path(), "/");
        let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        pairs.sort();
        assert_eq!(
            pairs,
            [
                ("Action".to_owned(), "ConfirmSubscription".to_owned()),
                ("Token".to_owned(), token.to_owned()),
                ("TopicArn".to_owned(), topic.as_str().to_owned()),
            ]
        );
    }
}

fuzz_target!(|data: &str| run(data));
