-- Claims since the last completed step: a job claimed again and again without
-- completing one (its step crashes or hangs) is given up instead of worked for ever.
ALTER TABLE executions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
