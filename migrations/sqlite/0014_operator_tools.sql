-- The operator's tools: a final state `discarded` (an operator gave up on a job, with a
-- reason; kept in history), the trail of every operator action, the kinds paused, and the
-- indexes the operator's lists walk.
--
-- SQLite cannot alter a CHECK constraint: the table is rebuilt. Renaming `jobs` makes the
-- reference of `job_attempt_errors` follow it to the old table, so that table is rebuilt too,
-- referencing the new `jobs`; then both old tables go, with nothing pointing at them.
ALTER TABLE jobs RENAME TO jobs_before_discarded;
DROP INDEX jobs_due;
DROP INDEX jobs_running;
DROP INDEX jobs_unpushed;
DROP INDEX jobs_finished;
DROP INDEX jobs_caller_key;
CREATE TABLE jobs (
    id                  BLOB PRIMARY KEY,
    kind                TEXT NOT NULL,
    account_id          BIGINT,
    payload             TEXT NOT NULL,
    idempotency_key     TEXT UNIQUE,
    state               TEXT NOT NULL
                        CHECK (state IN ('queued', 'running', 'done', 'dead', 'discarded')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    run_at_ms           BIGINT NOT NULL,
    locked_by           TEXT,
    locked_at_ms        BIGINT,
    last_error          TEXT,
    created_at_ms       BIGINT NOT NULL,
    finished_at_ms      BIGINT,
    pushed_at_ms        BIGINT,
    caller_key          TEXT
);
INSERT INTO jobs (id, kind, account_id, payload, idempotency_key, state, attempts,
                  max_attempts, run_at_ms, locked_by, locked_at_ms, last_error,
                  created_at_ms, finished_at_ms, pushed_at_ms, caller_key)
SELECT id, kind, account_id, payload, idempotency_key, state, attempts, max_attempts,
       run_at_ms, locked_by, locked_at_ms, last_error, created_at_ms, finished_at_ms,
       pushed_at_ms, caller_key
  FROM jobs_before_discarded;

ALTER TABLE job_attempt_errors RENAME TO job_attempt_errors_before_discarded;
CREATE TABLE job_attempt_errors (
    job_id      BLOB NOT NULL REFERENCES jobs (id),
    attempt     INTEGER NOT NULL,
    error       TEXT NOT NULL,
    permanent   INTEGER NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
INSERT INTO job_attempt_errors (job_id, attempt, error, permanent, at_ms)
SELECT job_id, attempt, error, permanent, at_ms FROM job_attempt_errors_before_discarded;
DROP TABLE job_attempt_errors_before_discarded;
DROP TABLE jobs_before_discarded;

CREATE INDEX jobs_due ON jobs (run_at_ms, id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (locked_at_ms) WHERE state = 'running';
CREATE INDEX jobs_unpushed ON jobs (created_at_ms) WHERE state = 'queued' AND pushed_at_ms IS NULL;
CREATE UNIQUE INDEX jobs_caller_key ON jobs (account_id, caller_key) WHERE caller_key IS NOT NULL;
-- Pruning: finished and discarded jobs after `queue.retention_days`, dead ones after
-- `queue.dead_retention_days`; both walk this index.
CREATE INDEX jobs_finished ON jobs (finished_at_ms) WHERE state IN ('done', 'dead', 'discarded');

-- Lists, newest first, are keyset-paginated on the primary key (job ids are UUIDv7, in
-- creation order): no index of their own, written on every state change of every job.
-- The dead list by kind, the one operators open most; partial, so it costs only dead rows.
CREATE INDEX jobs_dead_by_kind ON jobs (kind, id) WHERE state = 'dead';
-- "What happened to user U": the events their jobs emitted.
CREATE INDEX events_user ON events (user_id, id);

CREATE TABLE operator_actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    operator    TEXT NOT NULL,
    action      TEXT NOT NULL,
    -- The jobs acted on (a JSON array of ids), or the filter for a bulk action (JSON).
    target      TEXT NOT NULL,
    job_count   BIGINT NOT NULL,
    reason      TEXT,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX operator_actions_at ON operator_actions (at_ms, id);

-- Workers start no job of a paused kind: the claim leaves them queued.
CREATE TABLE paused_kinds (
    kind        TEXT PRIMARY KEY,
    paused_by   TEXT NOT NULL,
    paused_at_ms BIGINT NOT NULL
);
