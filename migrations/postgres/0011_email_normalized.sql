-- Emails compare case-insensitively in full Unicode (SPEC section 3), on both backends.
-- The comparison key is computed by the service in Rust (`domain::email::normalize_email`:
-- trimmed, lower-cased) and stored beside the address, for users and for the blocklist;
-- every lookup by email compares it. Before, the blocklist compared the address as stored
-- (the CRM's rows come as people typed them), and SQLite's `lower()` folded ASCII only.
--
-- Existing rows and rows the CRM writes directly (it shares the database and knows nothing
-- of the column) get `lower(btrim(email))`: in a UTF-8 database PostgreSQL's `lower()` folds
-- Unicode as Rust does for almost all text (both map a capital sigma to `σ`).

CREATE FUNCTION fill_email_normalized() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Left alone when the writer set it (the service, in Rust); filled when it did not, or
    -- when the email changed and the key did not follow.
    IF NEW.email_normalized IS NULL
       OR (TG_OP = 'UPDATE' AND NEW.email IS DISTINCT FROM OLD.email
           AND NEW.email_normalized IS NOT DISTINCT FROM OLD.email_normalized) THEN
        NEW.email_normalized := lower(btrim(NEW.email));
    END IF;
    RETURN NEW;
END
$$;

ALTER TABLE users ADD COLUMN email_normalized TEXT;
UPDATE users SET email_normalized = lower(btrim(email));
ALTER TABLE users ALTER COLUMN email_normalized SET NOT NULL;
CREATE TRIGGER users_email_normalized BEFORE INSERT OR UPDATE OF email, email_normalized
    ON users FOR EACH ROW EXECUTE FUNCTION fill_email_normalized();
-- One user per email and account, whatever the case: the same rule as before (every user
-- of the account, deactivated ones too, since reactivation brings them back), on the key.
DROP INDEX users_account_email;
CREATE UNIQUE INDEX users_account_email ON users (account_id, email_normalized);

ALTER TABLE email_blocklist ADD COLUMN email_normalized TEXT;
UPDATE email_blocklist SET email_normalized = lower(btrim(email));
ALTER TABLE email_blocklist ALTER COLUMN email_normalized SET NOT NULL;
CREATE TRIGGER email_blocklist_email_normalized BEFORE INSERT OR UPDATE OF email, email_normalized
    ON email_blocklist FOR EACH ROW EXECUTE FUNCTION fill_email_normalized();
-- Not unique: the CRM's `Bob@Example.com` and the service's `bob@example.com` may both be
-- there already (the primary key is on the address as written); either one blocks.
CREATE INDEX email_blocklist_normalized ON email_blocklist (account_id, email_normalized);
