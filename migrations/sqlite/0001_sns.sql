-- Every authenticated SNS delivery, deduplicated on MessageId.
CREATE TABLE sns_messages (
    message_id          TEXT PRIMARY KEY,
    message_type        TEXT NOT NULL,
    topic_arn           TEXT NOT NULL,
    subject             TEXT,
    sent_at             TEXT NOT NULL,
    received_at         TEXT NOT NULL,
    signature_version   TEXT NOT NULL,
    -- accepted | ignored | confirming | confirmed | confirmation_failed
    -- | pending_confirmation | unsubscribed
    disposition         TEXT NOT NULL,
    disposition_reason  TEXT,
    body                TEXT NOT NULL,
    event_id            TEXT,
    source_type         TEXT,
    source_id           TEXT,
    source_arn          TEXT,
    region              TEXT,
    account_id          TEXT
);

CREATE INDEX sns_messages_received ON sns_messages (received_at DESC, message_id DESC);

-- What restop knows of each topic's subscription to this endpoint.
CREATE TABLE sns_subscriptions (
    topic_arn           TEXT PRIMARY KEY,
    -- pending_confirmation | confirmed | confirmation_failed | unsubscribed
    status              TEXT NOT NULL,
    subscription_arn    TEXT,
    -- Kept so that an operator can confirm by hand; never logged or served.
    subscribe_url       TEXT,
    last_message_id     TEXT NOT NULL,
    last_error          TEXT,
    first_seen_at       TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    confirmed_at        TEXT
);
