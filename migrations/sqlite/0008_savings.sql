-- What the engine's Describe said of the database, the last time it looked: what
-- `/v1/savings` prices a forced start by. NULL for executions that never described their
-- database (ended at the tag check) and for those from before this column existed.
-- instance_class: NULL for a cluster (RDS's cluster answer names no class).
-- instance_count: 1 for an instance; an Aurora cluster's members at the time.
ALTER TABLE executions ADD COLUMN instance_class TEXT;
ALTER TABLE executions ADD COLUMN engine TEXT;
ALTER TABLE executions ADD COLUMN multi_az BOOLEAN;
ALTER TABLE executions ADD COLUMN instance_count INTEGER;
-- `/v1/savings` reads forced starts by when they happened.
CREATE INDEX executions_event_at ON executions (event_at);
