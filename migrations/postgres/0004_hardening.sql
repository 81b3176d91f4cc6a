-- restop asked RDS to stop the database: written before the call, so that a crash between
-- the call and its commit still ends `stopped`, not `already_stopped`.
ALTER TABLE executions ADD COLUMN stop_requested_at TIMESTAMPTZ;
-- Stops RDS refused in a row while the database reported `available`.
ALTER TABLE executions ADD COLUMN stop_refusals INTEGER NOT NULL DEFAULT 0;

-- Bodies as received, byte for byte: U+0000 is legal in JSON (so in an SNS Message) but
-- not in a TEXT column.
ALTER TABLE sns_messages ALTER COLUMN body TYPE BYTEA USING convert_to(body, 'UTF8');

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
