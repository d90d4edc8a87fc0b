-- The circuit breaker of the idle sweep: an account whose run would have locked more than
-- sweeps.breaker_share of its active users is held (nobody locked there) until an
-- administrator confirms (`lifecycle sweep lock-idle --account A --confirm`). One open hold
-- per account and sweep; confirmed holds stay as history.
CREATE TABLE sweep_holds (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id      INTEGER NOT NULL REFERENCES accounts (id),
    sweep           TEXT NOT NULL,
    held_at         TEXT NOT NULL,
    share           REAL NOT NULL,
    would_lock      INTEGER NOT NULL,
    active_users    INTEGER NOT NULL,
    confirmed_at    TEXT,
    confirmed_by    TEXT
);
CREATE UNIQUE INDEX sweep_holds_open ON sweep_holds (account_id, sweep) WHERE confirmed_at IS NULL;
-- The sweeps page through an account's active users by id.
CREATE INDEX users_account_status_id ON users (account_id, status, id);

-- A sweep commits in many short transactions, each with the event of what it changed: a
-- job has one event per batch (0 for the jobs that commit once). SQLite cannot drop the
-- column's UNIQUE: the table is rebuilt, same rows, same ids.
CREATE TABLE events_batched (
    id                  INTEGER PRIMARY KEY,
    kind                TEXT NOT NULL,
    account_id          BIGINT,
    user_id             BIGINT,
    job_id              BLOB NOT NULL,
    batch               BIGINT NOT NULL DEFAULT 0,
    at                  TEXT NOT NULL,
    changes             TEXT NOT NULL,
    published_at        TEXT,
    stream_seq          BIGINT
);
INSERT INTO events_batched (id, kind, account_id, user_id, job_id, at, changes, published_at, stream_seq)
    SELECT id, kind, account_id, user_id, job_id, at, changes, published_at, stream_seq FROM events;
DROP TABLE events;
ALTER TABLE events_batched RENAME TO events;
CREATE INDEX events_unpublished ON events (id) WHERE published_at IS NULL;
CREATE INDEX events_account ON events (account_id, id);
CREATE UNIQUE INDEX events_stream_seq ON events (stream_seq);
CREATE UNIQUE INDEX events_job_batch ON events (job_id, batch);
