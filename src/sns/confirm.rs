//! Confirming a subscription by visiting its (already validated) SubscribeURL.

use url::Url;

use crate::http::{FetchError, fetch_limited};

const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// GETs the SubscribeURL and returns the SubscriptionArn from SNS's XML answer, which must
/// belong to `topic_arn`.
pub async fn confirm_subscription(
    client: &reqwest::Client,
    subscribe_url: Url,
    topic_arn: &str,
) -> Result<String, FetchError> {
    let body = fetch_limited(client, subscribe_url, MAX_RESPONSE_BYTES).await?;
    let text = String::from_utf8_lossy(&body);
    let arn = xml_element(&text, "SubscriptionArn")
        .ok_or_else(|| FetchError::Refused("answer has no SubscriptionArn".into()))?;
    let belongs_to_topic = arn
        .strip_prefix(topic_arn)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|id| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !belongs_to_topic {
        return Err(FetchError::Refused(format!(
            "SubscriptionArn {arn} does not belong to the topic"
        )));
    }
    Ok(arn.to_owned())
}

/// The text of the first `<name>...</name>` element; SNS's answer is flat and unescaped.
fn xml_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_subscription_arn() {
        let xml = "<ConfirmSubscriptionResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
            <ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-east-1:123456789012:t:\
            1f0b1c2d-aaaa-bbbb-cccc-0123456789ab</SubscriptionArn></ConfirmSubscriptionResult>\
            </ConfirmSubscriptionResponse>";
        assert_eq!(
            xml_element(xml, "SubscriptionArn"),
            Some("arn:aws:sns:us-east-1:123456789012:t:1f0b1c2d-aaaa-bbbb-cccc-0123456789ab")
        );
        assert_eq!(xml_element("<a>", "SubscriptionArn"), None);
    }
}
