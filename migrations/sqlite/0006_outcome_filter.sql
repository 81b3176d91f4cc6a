-- `GET /v1/executions?outcome=` (the console's outcome filter), newest first, like the
-- other filters.
CREATE INDEX executions_outcome ON executions (outcome, created_at DESC, id DESC);
