-- One execution per protection run: from an accepted RDS event (trigger 'sns') or an
-- operator's request (trigger 'manual'). The row is also the durable job: next_run_at
-- says when the engine works on it next, the lease says who does.
CREATE TABLE executions (
    id                  TEXT PRIMARY KEY,
    resource_type       TEXT NOT NULL,          -- db-instance | db-cluster
    resource_id         TEXT NOT NULL,
    resource_arn        TEXT NOT NULL,
    region              TEXT NOT NULL,
    account_id          TEXT NOT NULL,
    trigger             TEXT NOT NULL,          -- sns | manual
    message_id          TEXT,                   -- the SNS message that started it
    event_id            TEXT,
    mode                TEXT NOT NULL,          -- internal | step_functions
    dry_run             BOOLEAN NOT NULL,
    skip_tag_check      BOOLEAN NOT NULL,
    -- pending | running | succeeded | failed | cancelled | skipped
    status              TEXT NOT NULL,
    outcome             TEXT,
    reason              TEXT,
    phase               TEXT NOT NULL,
    retries             INTEGER NOT NULL DEFAULT 0,
    sfn_execution_arn   TEXT,
    event_at            TEXT NOT NULL,   -- when the event happened (grace period start)
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    started_at          TEXT,
    finished_at         TEXT,
    deadline_at         TEXT NOT NULL,
    -- pending | sent | failed, when RESTOP_NOTIFY_URL is set
    notify_state        TEXT,
    notify_attempts     INTEGER NOT NULL DEFAULT 0,
    notify_error        TEXT,
    next_run_at         TEXT,
    lease_owner         TEXT,
    lease_expires_at    TEXT,
    -- Bumped by every claim and by cancellation: a worker commits only while it still
    -- holds the token it claimed with.
    lease_token         INTEGER NOT NULL DEFAULT 0
);

-- At most one active execution per resource.
CREATE UNIQUE INDEX executions_one_active ON executions (resource_arn)
    WHERE status IN ('pending', 'running');
CREATE INDEX executions_due ON executions (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX executions_created ON executions (created_at DESC, id DESC);

-- The history of an execution. Identical consecutive observations (a long wait) share one
-- row: repeats counts them and last_at is the latest.
CREATE TABLE execution_steps (
    execution_id        TEXT NOT NULL REFERENCES executions (id),
    seq                 INTEGER NOT NULL,
    at                  TEXT NOT NULL,
    last_at             TEXT NOT NULL,
    repeats             INTEGER NOT NULL DEFAULT 1,
    step                TEXT NOT NULL,
    rds_status          TEXT,
    action              TEXT NOT NULL,
    error               TEXT,
    PRIMARY KEY (execution_id, seq)
);

ALTER TABLE sns_messages ADD COLUMN execution_id TEXT REFERENCES executions (id);
