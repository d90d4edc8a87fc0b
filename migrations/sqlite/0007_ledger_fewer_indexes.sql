-- Every index on `jobs` is written on every state change of every job. `jobs_state` served
-- only counts by state, which the partial indexes and a scan serve as well.
DROP INDEX jobs_state;
