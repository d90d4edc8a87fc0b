-- Idempotency keys were global: one unique index over every tenant and kind, shared by the
-- keys producers send and the keys the service derives for its own follow-up jobs
-- (`mail::send:<email>`, `license::release:<license>:<epoch>`, `outbox:<row>`). Account 2's
-- key `K-1` answered with account 1's job, and a producer could take an internal key first
-- and swallow the job the service meant to record under it.
--
-- A producer's key now lives in `caller_key`, unique per account (as Stripe scopes keys per
-- account); `idempotency_key` keeps only the service's own keys, under its global index,
-- where no producer can write. A caller's key can never equal an internal one: they are in
-- different columns under different indexes.
ALTER TABLE jobs ADD COLUMN caller_key TEXT;

-- Keys already recorded that the service did not derive were a producer's. (A producer's
-- key that mimicked an internal one stays where it is: it holds the internal key space.)
UPDATE jobs SET caller_key = idempotency_key, idempotency_key = NULL
 WHERE idempotency_key IS NOT NULL
   AND account_id IS NOT NULL
   AND idempotency_key NOT LIKE 'mail::send:%'
   AND idempotency_key NOT LIKE 'license::release:%'
   AND idempotency_key NOT LIKE 'outbox:%';

-- Partial, as jobs_idempotency_key: most jobs carry no key and pay nothing.
CREATE UNIQUE INDEX jobs_caller_key ON jobs (account_id, caller_key) WHERE caller_key IS NOT NULL;
