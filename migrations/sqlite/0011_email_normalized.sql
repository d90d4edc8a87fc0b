-- Emails compare case-insensitively in full Unicode (SPEC section 3), on both backends.
-- The comparison key is computed by the service in Rust (`domain::email::normalize_email`:
-- trimmed, lower-cased) and stored beside the address, for users and for the blocklist;
-- every lookup by email compares it. Before, the blocklist compared the address as stored
-- (the CRM's rows come as people typed them), and SQLite's `lower()` folded ASCII only.
--
-- SQLite cannot call Rust from SQL, and the CRM's connections would not have a function the
-- service registered. So existing rows, and rows the CRM writes directly, get SQLite's
-- `lower(trim(email))`, which folds ASCII only; when the service starts it recomputes, in
-- Rust, the key of every row whose address has a non-ASCII character
-- (`users::renormalize_emails`), the only rows where the two can differ. Between a CRM
-- write of a non-ASCII address in another case and the next start, that row compares with
-- its non-ASCII letters as written: the gap, on SQLite only.
--
-- The column stays nullable (SQLite adds no NOT NULL column without a default); the
-- triggers fill it right after any write that left it empty.

ALTER TABLE users ADD COLUMN email_normalized TEXT;
UPDATE users SET email_normalized = lower(trim(email));
CREATE TRIGGER users_email_normalized_insert AFTER INSERT ON users
    WHEN NEW.email_normalized IS NULL
BEGIN
    UPDATE users SET email_normalized = lower(trim(NEW.email)) WHERE id = NEW.id;
END;
CREATE TRIGGER users_email_normalized_update AFTER UPDATE OF email ON users
    WHEN NEW.email IS NOT OLD.email AND NEW.email_normalized IS OLD.email_normalized
BEGIN
    UPDATE users SET email_normalized = lower(trim(NEW.email)) WHERE id = NEW.id;
END;
-- One user per email and account, whatever the case: the same rule as before (every user
-- of the account, deactivated ones too, since reactivation brings them back), on the key.
DROP INDEX users_account_email;
CREATE UNIQUE INDEX users_account_email ON users (account_id, email_normalized);

ALTER TABLE email_blocklist ADD COLUMN email_normalized TEXT;
UPDATE email_blocklist SET email_normalized = lower(trim(email));
CREATE TRIGGER email_blocklist_email_normalized_insert AFTER INSERT ON email_blocklist
    WHEN NEW.email_normalized IS NULL
BEGIN
    UPDATE email_blocklist SET email_normalized = lower(trim(NEW.email))
     WHERE account_id = NEW.account_id AND email = NEW.email;
END;
CREATE TRIGGER email_blocklist_email_normalized_update AFTER UPDATE OF email ON email_blocklist
    WHEN NEW.email IS NOT OLD.email AND NEW.email_normalized IS OLD.email_normalized
BEGIN
    UPDATE email_blocklist SET email_normalized = lower(trim(NEW.email))
     WHERE account_id = NEW.account_id AND email = NEW.email;
END;
-- Not unique: the CRM's `Bob@Example.com` and the service's `bob@example.com` may both be
-- there already (the primary key is on the address as written); either one blocks.
CREATE INDEX email_blocklist_normalized ON email_blocklist (account_id, email_normalized);
