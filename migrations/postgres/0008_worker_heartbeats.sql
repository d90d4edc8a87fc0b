-- Every worker process beats here every few seconds. A process whose beat is older than
-- `queue.heartbeat_timeout_secs` is dead: a live one marks it stopped and puts its claims
-- back at once, rather than after the whole visibility timeout. The dashboard lists the live
-- ones. Times are epoch milliseconds of the machines' wall clocks.
CREATE TABLE worker_processes (
    id              TEXT PRIMARY KEY,
    host            TEXT NOT NULL,
    pid             BIGINT NOT NULL,
    workers         INTEGER NOT NULL,
    concurrency     INTEGER NOT NULL,
    started_at_ms   BIGINT NOT NULL,
    last_beat_ms    BIGINT NOT NULL,
    -- Jobs its consumers held (claimed, not settled) at the last beat.
    jobs_held       INTEGER NOT NULL DEFAULT 0,
    stopped_at_ms   BIGINT,
    -- "shut down" (it said goodbye) or "heartbeat lost" (another process found it dead).
    stop_reason     TEXT
);
CREATE INDEX worker_processes_live ON worker_processes (last_beat_ms) WHERE stopped_at_ms IS NULL;
