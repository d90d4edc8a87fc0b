-- SendEmail no longer holds a write transaction across the SMTP conversation: it claims the
-- message in one short transaction (who claimed it, and when, in ms since the epoch like the
-- ledger's times), sends outside any transaction, and marks it sent in another. The state
-- stays 'pending' while claimed. A claim older than the lease (3 x mail.timeout_secs) was
-- left by a crashed attempt and may be taken over; a failed send clears it.
ALTER TABLE email_messages ADD COLUMN claimed_by TEXT;
ALTER TABLE email_messages ADD COLUMN claimed_at_ms BIGINT;

-- The publication sequence of events on the Redis stream: consecutive, assigned (and
-- committed) by the publisher before it publishes, so the stream entry id `0-<stream_seq>`
-- is known before the XADD and Redis refuses a repeat. NULL: not assigned yet, or never
-- published to a stream (the embedded default's table feed, events older than this).
ALTER TABLE events ADD COLUMN stream_seq BIGINT;
CREATE UNIQUE INDEX events_stream_seq ON events (stream_seq);
