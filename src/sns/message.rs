//! Strict parsing of an SNS HTTP(S) delivery body and the exact string SNS signs.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use crate::aws::arn::TopicArn;
use crate::execution::MessageType;

/// A syntactically valid SNS message whose signature has not been checked yet.
#[derive(Clone, PartialEq, Eq)]
pub struct SnsMessage {
    pub message_type: MessageType,
    pub message_id: String,
    pub topic_arn: TopicArn,
    pub subject: Option<String>,
    pub message: String,
    /// `Timestamp` exactly as sent: it is part of the signed text.
    pub timestamp_raw: String,
    pub timestamp: DateTime<Utc>,
    pub signature_version: String,
    pub signature: String,
    pub signing_cert_url: String,
    /// SubscriptionConfirmation and UnsubscribeConfirmation only.
    pub token: Option<String>,
    /// SubscriptionConfirmation and UnsubscribeConfirmation only.
    pub subscribe_url: Option<String>,
}

/// Token and SubscribeURL are secrets: they never reach logs.
impl fmt::Debug for SnsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsMessage")
            .field("message_type", &self.message_type)
            .field("message_id", &self.message_id)
            .field("topic_arn", &self.topic_arn.as_str())
            .field("timestamp", &self.timestamp_raw)
            .field("signature_version", &self.signature_version)
            .finish_non_exhaustive()
    }
}

impl SnsMessage {
    /// Parses a delivery body: a JSON object without duplicate keys, string values for
    /// every known field, and the fields its `Type` requires.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut fields = serde_json::from_slice::<StrictFields>(body)
            .map_err(|e| format!("malformed JSON: {e}"))?
            .0;
        let mut take = |name: &str| fields.remove(name);
        let message_type = match take("Type") {
            Some(text) => text
                .parse::<MessageType>()
                .map_err(|_| format!("unknown Type '{}'", truncate(&text)))?,
            None => return Err("missing field Type".into()),
        };
        let mut required = |name: &str| take(name).ok_or_else(|| format!("missing field {name}"));
        let message_id = required("MessageId")?;
        let topic_arn = required("TopicArn")?;
        let message = required("Message")?;
        let timestamp_raw = required("Timestamp")?;
        let signature_version = required("SignatureVersion")?;
        let signature = required("Signature")?;
        let signing_cert_url = required("SigningCertURL")?;
        let (token, subscribe_url) = match message_type {
            MessageType::Notification => (None, None),
            _ => (Some(required("Token")?), Some(required("SubscribeURL")?)),
        };
        // A Subject only counts for notifications; elsewhere it is not signed.
        let subject = match message_type {
            MessageType::Notification => take("Subject"),
            _ => None,
        };

        if message_id.is_empty()
            || message_id.len() > 128
            || !message_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err("MessageId must be 1-128 printable ASCII characters".into());
        }
        let topic_arn = topic_arn.parse::<TopicArn>()?;
        let timestamp = DateTime::parse_from_rfc3339(&timestamp_raw)
            .map_err(|_| format!("Timestamp '{}' is not RFC 3339", truncate(&timestamp_raw)))?
            .with_timezone(&Utc);

        Ok(Self {
            message_type,
            message_id,
            topic_arn,
            subject,
            message,
            timestamp_raw,
            timestamp,
            signature_version,
            signature,
            signing_cert_url,
            token,
            subscribe_url,
        })
    }

    /// The text SNS signs: `name\nvalue\n` for each signed field, in SNS's fixed order.
    pub fn string_to_sign(&self) -> String {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.message_type {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.push(("Timestamp", &self.timestamp_raw));
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                fields.push(("SubscribeURL", self.subscribe_url.as_deref().unwrap_or("")));
                fields.push(("Timestamp", &self.timestamp_raw));
                fields.push(("Token", self.token.as_deref().unwrap_or("")));
            }
        }
        fields.push(("TopicArn", self.topic_arn.as_str()));
        fields.push(("Type", self.message_type.as_str()));

        let mut out =
            String::with_capacity(fields.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
        for (name, value) in fields {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
        out
    }
}

/// An echo of a field that failed to parse, short enough for logs and answers.
fn truncate(s: &str) -> String {
    super::shorten(s, 64)
}

/// The top-level object of a delivery: every known field as a string, duplicates refused.
struct StrictFields(BTreeMap<String, String>);

/// Fields whose value must be a JSON string when present.
const STRING_FIELDS: &[&str] = &[
    "Type",
    "MessageId",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "UnsubscribeURL",
    "SubscribeURL",
    "Token",
];

impl<'de> Deserialize<'de> for StrictFields {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = StrictFields;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an SNS message object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictFields, A::Error> {
                let mut fields = BTreeMap::new();
                let mut seen_other = std::collections::BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if STRING_FIELDS.contains(&key.as_str()) {
                        if fields.contains_key(&key) {
                            return Err(de::Error::custom(format!("duplicate field {key}")));
                        }
                        let value = map
                            .next_value::<String>()
                            .map_err(|e| de::Error::custom(format!("field {key}: {e}")))?;
                        fields.insert(key, value);
                    } else {
                        // Unsigned extras (MessageAttributes, future fields) are never acted on.
                        if !seen_other.insert(key.clone()) {
                            return Err(de::Error::custom(format!("duplicate field {key}")));
                        }
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(StrictFields(fields))
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTIFICATION: &str = r#"{"Type":"Notification","MessageId":"m-1",
        "TopicArn":"arn:aws:sns:us-east-1:123456789012:rds-events","Message":"hi",
        "Timestamp":"2026-11-26T10:00:00.000Z","SignatureVersion":"2","Signature":"c2ln",
        "SigningCertURL":"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem",
        "UnsubscribeURL":"https://example","MessageAttributes":{"EventID":{"Type":"String","Value":"x"}}}"#;

    #[test]
    fn parses_a_notification_and_builds_the_string_to_sign() {
        let msg = SnsMessage::parse(NOTIFICATION.as_bytes()).unwrap();
        assert_eq!(msg.message_type, MessageType::Notification);
        assert_eq!(msg.topic_arn.region(), "us-east-1");
        assert_eq!(
            msg.string_to_sign(),
            "Message\nhi\nMessageId\nm-1\nTimestamp\n2026-11-26T10:00:00.000Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:rds-events\nType\nNotification\n"
        );
    }

    #[test]
    fn refuses_duplicate_keys_even_unknown_ones() {
        let dup = NOTIFICATION.replacen(
            r#""Type":"Notification","#,
            r#""Type":"Notification","Type":"Notification","#,
            1,
        );
        assert!(
            SnsMessage::parse(dup.as_bytes())
                .unwrap_err()
                .contains("duplicate")
        );
        let dup = NOTIFICATION.replacen(r#""Type""#, r#""X":1,"X":2,"Type""#, 1);
        assert!(
            SnsMessage::parse(dup.as_bytes())
                .unwrap_err()
                .contains("duplicate")
        );
    }

    #[test]
    fn refuses_non_string_fields_and_missing_ones() {
        let null_subject =
            NOTIFICATION.replacen(r#""Message":"hi","#, r#""Message":"hi","Subject":null,"#, 1);
        assert!(SnsMessage::parse(null_subject.as_bytes()).is_err());
        let no_cert = NOTIFICATION.replacen("SigningCertURL", "SigningCertUrl", 1);
        assert!(
            SnsMessage::parse(no_cert.as_bytes())
                .unwrap_err()
                .contains("SigningCertURL")
        );
        assert!(SnsMessage::parse(b"[]").is_err());
        assert!(SnsMessage::parse(b"{\"Type\":\"Other\"}").is_err());
        let confirmation =
            NOTIFICATION.replacen("\"Notification\"", "\"SubscriptionConfirmation\"", 1);
        assert!(
            SnsMessage::parse(confirmation.as_bytes())
                .unwrap_err()
                .contains("Token")
        );
    }
}
