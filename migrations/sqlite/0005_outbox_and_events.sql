-- SQLite twin of migrations/postgres: same tables, same meaning.
-- The transactional outbox of producer services: a row inserted here in the producer's own
-- transaction becomes exactly one job (or, when its payload is invalid, a row marked with the
-- reason). `kind` is a job kind's slug (`deactivate-user`) or name (`user::deactivate`).
CREATE TABLE job_outbox (
    id                  INTEGER PRIMARY KEY,
    kind                TEXT NOT NULL,
    payload             TEXT NOT NULL,
    idempotency_key     TEXT,
    created_at          TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    relayed_at          TEXT,
    job_id              BLOB,
    error               TEXT
);
CREATE INDEX job_outbox_pending ON job_outbox (id) WHERE relayed_at IS NULL;

-- Every completed change, written in the transaction of the job that made it, then published
-- once (Redis stream `lifecycle:events` in production; this table is the feed on the embedded
-- default).
CREATE TABLE events (
    id                  INTEGER PRIMARY KEY,
    kind                TEXT NOT NULL,
    account_id          BIGINT,
    user_id             BIGINT,
    job_id              BLOB NOT NULL UNIQUE,
    at                  TEXT NOT NULL,
    changes             TEXT NOT NULL,
    published_at        TEXT
);
CREATE INDEX events_unpublished ON events (id) WHERE published_at IS NULL;
CREATE INDEX events_account ON events (account_id, id);
