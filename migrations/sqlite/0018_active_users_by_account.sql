-- SQLite twin of migrations/postgres: the active users in (account_id, id) order, for the
-- user sweeps' pages across accounts.
CREATE INDEX users_active_by_account ON users (account_id, id) WHERE status = 'active';
