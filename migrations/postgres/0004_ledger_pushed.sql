-- When the transport last took the job (Redis: pushed to the stream or the delayed set). NULL
-- for a queued job means the transport may not hold it (the push after the commit failed, or
-- Redis lost its data): the reconciler pushes those again. On the database transport the
-- ledger row is the queue entry, so it is set at once.
ALTER TABLE jobs ADD COLUMN pushed_at_ms BIGINT;
UPDATE jobs SET pushed_at_ms = created_at_ms;
CREATE INDEX jobs_unpushed ON jobs (created_at_ms) WHERE state = 'queued' AND pushed_at_ms IS NULL;
