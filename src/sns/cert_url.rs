//! Which URLs restop will ever contact on behalf of a message: `SigningCertURL` and
//! `SubscribeURL` are attacker-controlled until proven otherwise, so they are checked
//! before any network call.

use std::fmt;
use std::str::FromStr;

use url::{Host, Url};

use crate::aws::arn::{TopicArn, is_region};

/// An operator-trusted `host[:port]` (an SNS emulator or a test server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    host: String,
    port: Option<u16>,
}

impl ExtraHost {
    /// Plain `http` is accepted only for loopback hosts.
    fn allows_http(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    fn matches(&self, url: &Url) -> bool {
        url.host_str() == Some(self.host.as_str()) && url.port() == self.port
    }
}

impl FromStr for ExtraHost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = Url::parse(&format!("https://{s}/"))
            .map_err(|_| format!("'{s}' is not a host[:port]"))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        // Round-tripping must give back exactly what was written: no paths, users or tricks.
        let rebuilt = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        if host.is_empty() || rebuilt != s.to_ascii_lowercase() {
            return Err(format!("'{s}' is not a host[:port]"));
        }
        Ok(Self {
            host,
            port: parsed.port(),
        })
    }
}

impl fmt::Display for ExtraHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// A `SigningCertURL` that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertUrl {
    pub url: Url,
    /// `SimpleNotificationService-<32 hex>.pem`, the name looked up in the certificate directory.
    pub file_name: String,
}

/// Checks the parts every SNS URL shares: scheme, host, no userinfo, no fragment. The host
/// must be `sns.<region>.amazonaws.com[.cn]` for the topic's region, or an extra host.
fn check_sns_url(raw: &str, topic: &TopicArn, extra_hosts: &[ExtraHost]) -> Result<Url, String> {
    // Refuse what URL parsers disagree on before any parser sees it. Percent-escapes are
    // allowed only in the query, where they cannot change the host.
    let authority_and_path = raw.split('?').next().unwrap_or_default();
    if let Some(c) = raw
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '\\' | '@' | '#'))
        .or_else(|| authority_and_path.chars().find(|&c| c == '%'))
    {
        return Err(format!("URL contains a forbidden character {c:?}"));
    }
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    // A URL that normalises to something else (case, dot segments, default port) hides
    // what will really be fetched.
    if url.as_str() != raw {
        return Err("URL is not in canonical form".into());
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err("URL carries userinfo or a fragment".into());
    }
    if let Some(extra) = extra_hosts.iter().find(|h| h.matches(&url)) {
        return match url.scheme() {
            "https" => Ok(url),
            "http" if extra.allows_http() => Ok(url),
            _ => Err(format!("scheme {} not allowed for {extra}", url.scheme())),
        };
    }
    if url.scheme() != "https" {
        return Err("URL must use https".into());
    }
    if url.port().is_some() {
        return Err("URL must not name a port".into());
    }
    let Some(Host::Domain(host)) = url.host() else {
        return Err("URL host must be an SNS host name".into());
    };
    let region = sns_host_region(host).ok_or_else(|| format!("host {host} is not an SNS host"))?;
    if region != topic.region() {
        return Err(format!(
            "host region {region} does not match the topic's region {}",
            topic.region()
        ));
    }
    Ok(url)
}

/// The region of `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn` for China regions).
fn sns_host_region(host: &str) -> Option<&str> {
    let rest = host.strip_prefix("sns.")?;
    let (region, china) = match rest.strip_suffix(".amazonaws.com.cn") {
        Some(region) => (region, true),
        None => (rest.strip_suffix(".amazonaws.com")?, false),
    };
    (is_region(region) && region.starts_with("cn-") == china).then_some(region)
}

/// Validates a `SigningCertURL`: SNS host rules plus the path
/// `/SimpleNotificationService-<32 lowercase hex>.pem` and no query.
pub fn validate_cert_url(
    raw: &str,
    topic: &TopicArn,
    extra_hosts: &[ExtraHost],
) -> Result<CertUrl, String> {
    if raw.contains('?') {
        return Err("SigningCertURL must not carry a query".into());
    }
    let url = check_sns_url(raw, topic, extra_hosts)?;
    let file_name = url
        .path()
        .strip_prefix('/')
        .filter(|name| is_cert_file_name(name))
        .ok_or("SigningCertURL path must be /SimpleNotificationService-<hash>.pem")?
        .to_owned();
    Ok(CertUrl { url, file_name })
}

fn is_cert_file_name(name: &str) -> bool {
    name.strip_prefix("SimpleNotificationService-")
        .and_then(|rest| rest.strip_suffix(".pem"))
        .is_some_and(|hash| {
            hash.len() == 32 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// Validates a SubscriptionConfirmation's `SubscribeURL`: SNS host rules, path `/`, and a
/// query of exactly `Action=ConfirmSubscription`, the message's TopicArn and its Token.
pub fn validate_subscribe_url(
    raw: &str,
    topic: &TopicArn,
    token: &str,
    extra_hosts: &[ExtraHost],
) -> Result<Url, String> {
    let url = check_sns_url(raw, topic, extra_hosts)?;
    if url.path() != "/" {
        return Err("SubscribeURL path must be /".into());
    }
    let (mut action, mut topic_arn, mut url_token) = (None, None, None);
    for (name, value) in url.query_pairs() {
        let slot = match name.as_ref() {
            "Action" => &mut action,
            "TopicArn" => &mut topic_arn,
            "Token" => &mut url_token,
            other => return Err(format!("SubscribeURL has an unexpected parameter {other}")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("SubscribeURL repeats the parameter {name}"));
        }
    }
    if action.as_deref() != Some("ConfirmSubscription") {
        return Err("SubscribeURL Action must be ConfirmSubscription".into());
    }
    if topic_arn.as_deref() != Some(topic.as_str()) {
        return Err("SubscribeURL TopicArn differs from the message's".into());
    }
    if url_token.as_deref() != Some(token) {
        return Err("SubscribeURL Token differs from the message's".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef";

    fn topic(region: &str) -> TopicArn {
        let partition = crate::aws::arn::partition_of(region).unwrap();
        format!("arn:{partition}:sns:{region}:123456789012:rds-events")
            .parse()
            .unwrap()
    }

    fn cert_url(host: &str) -> String {
        format!("https://{host}/SimpleNotificationService-{HASH}.pem")
    }

    #[test]
    fn accepts_real_sns_hosts() {
        for (host, region) in [
            ("sns.us-east-1.amazonaws.com", "us-east-1"),
            ("sns.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
            ("sns.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ] {
            let ok = validate_cert_url(&cert_url(host), &topic(region), &[]).unwrap();
            assert_eq!(
                ok.file_name,
                format!("SimpleNotificationService-{HASH}.pem")
            );
        }
    }

    #[test]
    fn refuses_every_lookalike() {
        let t = topic("us-east-1");
        let path = format!("/SimpleNotificationService-{HASH}.pem");
        let lookalikes = [
            format!("http://sns.us-east-1.amazonaws.com{path}"),
            format!("https://sns.us-east-1.amazonaws.com.evil.com{path}"),
            format!("https://sns.us-east-1.amazonaws.com.{path}"),
            format!("https://sns-us-east-1.s3.amazonaws.com{path}"),
            format!("https://mybucket.s3.us-east-1.amazonaws.com{path}"),
            format!("https://sns.us-east-1.amazonaws.com.s3-website-us-east-1.amazonaws.com{path}"),
            format!("https://sqs.us-east-1.amazonaws.com{path}"),
            format!("https://ec2.us-east-1.amazonaws.com{path}"),
            format!("https://evil.sns.us-east-1.amazonaws.com{path}"),
            format!("https://54.239.28.85{path}"),
            format!("https://[::1]{path}"),
            format!("https://sns.us-east-1.amazonaws.com:8443{path}"),
            format!("https://sns.us-east-1.amazonaws.com@evil.com{path}"),
            format!("https://user:pw@sns.us-east-1.amazonaws.com{path}"),
            format!("https://sns.us-east-1.amazonaws.com{path}?x=1"),
            "https://evil.com/?.pem".to_owned(),
            format!("https://evil.com/x?u=https://sns.us-east-1.amazonaws.com{path}"),
            format!("https://sns.us-east-1.amazonaws.com{path}#frag"),
            format!("https://sns.us-east-1.amazonaws.com\\@evil.com{path}"),
            format!("https://evil.com\\sns.us-east-1.amazonaws.com{path}"),
            format!("https://sns.us-east-1.amazonaws%2Ecom{path}"),
            format!("https://SNS.us-east-1.amazonaws.com/x/..{path}"),
            format!("https://sns.eu-west-1.amazonaws.com{path}"),
            format!("https://sns.us-east-1.amazonaws.com.cn{path}"),
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-evil.pem".to_owned(),
            format!("https://sns.us-east-1.amazonaws.com/{}.pem", HASH),
            format!("https://sns.us-east-1.amazonaws.com/certs{path}"),
            format!(
                "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{}.pem",
                HASH.to_uppercase()
            ),
            format!(" https://sns.us-east-1.amazonaws.com{path}"),
            format!("ftp://sns.us-east-1.amazonaws.com{path}"),
            String::new(),
        ];
        for url in lookalikes {
            assert!(validate_cert_url(&url, &t, &[]).is_err(), "accepted {url}");
        }
    }

    #[test]
    fn extra_hosts_are_exact_and_http_only_on_loopback() {
        let t = topic("us-east-1");
        let local: ExtraHost = "127.0.0.1:9000".parse().unwrap();
        let emulator: ExtraHost = "sns.internal:8443".parse().unwrap();
        let extra = [local, emulator];
        let path = format!("/SimpleNotificationService-{HASH}.pem");
        assert!(validate_cert_url(&format!("http://127.0.0.1:9000{path}"), &t, &extra).is_ok());
        assert!(validate_cert_url(&format!("https://sns.internal:8443{path}"), &t, &extra).is_ok());
        assert!(validate_cert_url(&format!("http://sns.internal:8443{path}"), &t, &extra).is_err());
        assert!(validate_cert_url(&format!("http://127.0.0.1:9001{path}"), &t, &extra).is_err());
        assert!(validate_cert_url(&format!("http://127.0.0.1{path}"), &t, &extra).is_err());
        assert!("127.0.0.1:9000/path".parse::<ExtraHost>().is_err());
        assert!("user@host".parse::<ExtraHost>().is_err());
    }

    #[test]
    fn subscribe_url_must_carry_the_messages_topic_and_token() {
        let t = topic("us-east-1");
        let good = format!(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={}&Token=tok",
            t.as_str()
        );
        assert!(validate_subscribe_url(&good, &t, "tok", &[]).is_ok());
        assert!(validate_subscribe_url(&good, &t, "other", &[]).is_err());
        assert!(
            validate_subscribe_url(
                &good,
                &topic("us-east-1")
                    .to_string()
                    .replace("rds-events", "x")
                    .parse()
                    .unwrap(),
                "tok",
                &[]
            )
            .is_err()
        );
        let bad = [
            good.replace("ConfirmSubscription", "Unsubscribe"),
            good.replace("amazonaws.com/", "amazonaws.com/x"),
            format!("{good}&Token=tok"),
            format!("{good}&Endpoint=https://evil"),
            good.replace("https://", "http://"),
            good.replace("sns.us-east-1", "sns.us-west-2"),
        ];
        for url in bad {
            assert!(
                validate_subscribe_url(&url, &t, "tok", &[]).is_err(),
                "accepted {url}"
            );
        }
    }
}
