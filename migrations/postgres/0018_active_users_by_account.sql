-- The user sweeps walk every active user of every account in (account_id, id) order, a page
-- at a time, so that one page, one statement and one transaction serve many small accounts.
-- `users_account_status_id` cannot seek to the row comparison `(account_id, id) > (a, u)`
-- (status sits between the two columns); this index holds the active users alone, in that
-- order. Partial: a user leaving `active` leaves it, and no other status writes to it.
CREATE INDEX users_active_by_account ON users (account_id, id) WHERE status = 'active';
