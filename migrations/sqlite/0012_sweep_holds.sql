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
