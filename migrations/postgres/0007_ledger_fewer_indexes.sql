-- Every index on `jobs` is written on every state change of every job (a state change is
-- never a HOT update: `state` is in the partial indexes' predicates). `jobs_state` served
-- only counts by state, which the partial indexes and a scan serve as well; it cost a fifth
-- of the ledger's writes at thousands of jobs a second.
DROP INDEX jobs_state;

-- Most jobs carry no idempotency key, yet a plain unique index holds an entry (NULL) for
-- every row version of every job. Only keyed jobs need the uniqueness, so only they pay.
ALTER TABLE jobs DROP CONSTRAINT jobs_idempotency_key_key;
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
