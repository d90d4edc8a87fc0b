-- SQLite twin of migrations/postgres. The dashboard's sign-ins. A session is held by its cookie; the table keeps only the
-- SHA-256 digest of the cookie's token, so a read of the database signs nobody in.
CREATE TABLE admin_sessions (
    token_sha256    TEXT PRIMARY KEY,
    operator        TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    expires_at_ms   BIGINT NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at_ms);

-- Failed sign-ins, by name and by client address ("name" or "address" in `scope`): counted
-- within a window to refuse a guesser, across every process of the service.
CREATE TABLE admin_login_failures (
    scope       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX admin_login_failures_subject ON admin_login_failures (scope, subject, at_ms);
