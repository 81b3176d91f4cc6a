-- A forced start is one resource and one event time, whichever path saw it first (SNS, or
-- RDS's event log): executions are looked up that way.
CREATE INDEX executions_forced_start ON executions (resource_arn, event_at);

-- "Started" events that woke the execution, and its short polls since the last one.
ALTER TABLE executions ADD COLUMN wakes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN wake_polls INTEGER NOT NULL DEFAULT 0;

-- Each account and region whose RDS event log restop reads for forced starts SNS did not
-- deliver, leased like a job so that one replica sweeps it per interval.
CREATE TABLE catchup_sweeps (
    account_id          TEXT NOT NULL,
    region              TEXT NOT NULL,
    -- The end of the last sweep that succeeded; the next starts a little before it.
    swept_until         TIMESTAMPTZ,
    next_run_at         TIMESTAMPTZ NOT NULL,
    failures            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    last_success_at     TIMESTAMPTZ,
    lease_owner         TEXT,
    lease_expires_at    TIMESTAMPTZ,
    lease_token         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, region)
);
