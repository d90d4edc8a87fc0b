-- SQLite twin of migrations/postgres: same tables, same meaning.
-- Pruning finished jobs older than the retention walks this index, however many there are.
CREATE INDEX jobs_finished ON jobs (finished_at_ms) WHERE state IN ('done', 'dead');

-- The epoch of each Redis queue namespace, as last seen: when Redis holds another one (or
-- none), Redis lost the queue and the reconciler pushes every queued job again.
CREATE TABLE queue_epochs (
    namespace   TEXT PRIMARY KEY,
    epoch       TEXT NOT NULL
);
