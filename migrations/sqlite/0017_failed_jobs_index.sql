-- SQLite twin of migrations/postgres. The dashboard's default list (failed: retrying or
-- dead) walks the primary key newest first and filters; when the failures are old, that
-- walk passes every job finished since. This index holds only the failed rows, in id order.
-- SQLite uses a partial index only when the query repeats its predicate, as the failed
-- list's does; `state = 'dead'` alone gets `jobs_dead`.
CREATE INDEX jobs_failed ON jobs (id) WHERE state = 'dead' OR (state = 'queued' AND attempts > 0);
CREATE INDEX jobs_dead ON jobs (id) WHERE state = 'dead';
