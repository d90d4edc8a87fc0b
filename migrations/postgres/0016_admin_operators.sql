-- The dashboard's operators kept in the database (`lifecycle admin add-operator --store`),
-- beside those of the configuration file, which are looked up first. Only the argon2id
-- hash of the password is kept.
CREATE TABLE admin_operators (
    name            TEXT PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('operator', 'viewer')),
    password_hash   TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);
