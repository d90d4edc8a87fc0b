-- SQLite twin of migrations/postgres: same tables, same meaning.
-- Email messages: a change records the message it calls for in its own transaction; a
-- SendEmail job delivers it and marks it sent, so a retry never sends it twice. Variables
-- hold what the template shows, never a secret: credentials are minted when the message is
-- sent and only their hashes are stored.
CREATE TABLE email_messages (
    id                  INTEGER PRIMARY KEY,
    account_id          BIGINT NOT NULL REFERENCES accounts (id),
    user_id             BIGINT REFERENCES users (id),
    template            TEXT NOT NULL,
    language            TEXT NOT NULL,
    to_address          TEXT NOT NULL,
    to_name             TEXT NOT NULL,
    variables           TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'canceled')),
    created_by_job      BLOB,
    created_at          TEXT NOT NULL,
    send_attempts       INTEGER NOT NULL DEFAULT 0,
    sent_at             TEXT,
    message_id          TEXT
);
CREATE INDEX email_messages_user ON email_messages (user_id, created_at);
CREATE INDEX email_messages_pending ON email_messages (created_at) WHERE state = 'pending';

-- Single-use confirmation links; only the SHA-256 of the secret is kept. A newer link
-- supersedes the older ones of the same user.
CREATE TABLE confirmation_links (
    id                  INTEGER PRIMARY KEY,
    user_id             BIGINT NOT NULL REFERENCES users (id),
    email_message_id    BIGINT REFERENCES email_messages (id),
    token_hash          TEXT NOT NULL UNIQUE,
    created_at          TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    used_at             TEXT,
    superseded_at       TEXT
);
CREATE INDEX confirmation_links_user ON confirmation_links (user_id);

-- Reactivation takes an email off the blocklist without deleting the row: nothing is
-- physically deleted; blocking it again clears removed_at.
ALTER TABLE email_blocklist ADD COLUMN removed_at TEXT;
