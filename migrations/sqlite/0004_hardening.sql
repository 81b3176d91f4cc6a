-- restop asked RDS to stop the database: written before the call, so that a crash between
-- the call and its commit still ends `stopped`, not `already_stopped`.
ALTER TABLE executions ADD COLUMN stop_requested_at TEXT;
-- Stops RDS refused in a row while the database reported `available`.
ALTER TABLE executions ADD COLUMN stop_refusals INTEGER NOT NULL DEFAULT 0;

-- Bodies as received, byte for byte (as in Postgres, where U+0000 cannot be TEXT). SQLite
-- cannot change a column's type: the table is rebuilt.
CREATE TABLE sns_messages_rebuilt (
    message_id          TEXT PRIMARY KEY,
    message_type        TEXT NOT NULL,
    topic_arn           TEXT NOT NULL,
    subject             TEXT,
    sent_at             TEXT NOT NULL,
    received_at         TEXT NOT NULL,
    signature_version   TEXT NOT NULL,
    disposition         TEXT NOT NULL,
    disposition_reason  TEXT,
    body                BLOB NOT NULL,
    event_id            TEXT,
    source_type         TEXT,
    source_id           TEXT,
    source_arn          TEXT,
    region              TEXT,
    account_id          TEXT,
    execution_id        TEXT REFERENCES executions (id)
);
INSERT INTO sns_messages_rebuilt
    SELECT message_id, message_type, topic_arn, subject, sent_at, received_at,
           signature_version, disposition, disposition_reason, CAST(body AS BLOB), event_id,
           source_type, source_id, source_arn, region, account_id, execution_id
    FROM sns_messages;
DROP TABLE sns_messages;
ALTER TABLE sns_messages_rebuilt RENAME TO sns_messages;
CREATE INDEX sns_messages_received ON sns_messages (received_at DESC, message_id DESC);

-- The /v1 filters, each in the lists' order (newest first), and retention.
CREATE INDEX sns_messages_disposition ON sns_messages (disposition, received_at DESC, message_id DESC);
CREATE INDEX sns_messages_topic ON sns_messages (topic_arn, received_at DESC, message_id DESC);
CREATE INDEX sns_messages_source_id ON sns_messages (source_id, received_at DESC, message_id DESC);
CREATE INDEX sns_messages_source_arn ON sns_messages (source_arn, received_at DESC, message_id DESC);
CREATE INDEX executions_status ON executions (status, created_at DESC, id DESC);
CREATE INDEX executions_trigger ON executions (trigger, created_at DESC, id DESC);
CREATE INDEX executions_resource_id ON executions (resource_id, created_at DESC, id DESC);
CREATE INDEX executions_resource_arn ON executions (resource_arn, created_at DESC, id DESC);
CREATE INDEX executions_finished ON executions (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX sns_messages_execution ON sns_messages (execution_id) WHERE execution_id IS NOT NULL;
