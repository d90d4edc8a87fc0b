-- SQLite twin of migrations/postgres: same tables, same meaning.
-- The account-lifecycle data model (SPEC section 3). Nothing is ever physically deleted:
-- rows are closed (removed_at, left_at, revoked_at, state) so history stays.

CREATE TABLE accounts (
    id                              INTEGER PRIMARY KEY,
    name                            TEXT NOT NULL,
    time_zone                       TEXT NOT NULL DEFAULT 'UTC',
    billing_anchor_day              INTEGER NOT NULL DEFAULT 1 CHECK (billing_anchor_day BETWEEN 1 AND 31),
    idle_days                       INTEGER CHECK (idle_days > 0),
    password_max_age_days           INTEGER CHECK (password_max_age_days > 0),
    failed_login_limit              INTEGER CHECK (failed_login_limit > 0),
    contacts_policy                 TEXT NOT NULL DEFAULT 'unassign' CHECK (contacts_policy IN ('unassign', 'keep')),
    created_at                      TEXT NOT NULL
);

CREATE TABLE roles (
    id                  INTEGER PRIMARY KEY,
    account_id          BIGINT NOT NULL REFERENCES accounts (id),
    name                TEXT NOT NULL,
    rank                INTEGER NOT NULL,
    can_manage_users    INTEGER NOT NULL DEFAULT 0,
    is_admin            INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_id, name)
);

CREATE TABLE role_permissions (
    role_id     BIGINT NOT NULL REFERENCES roles (id),
    permission  TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE users (
    id                      INTEGER PRIMARY KEY,
    account_id              BIGINT NOT NULL REFERENCES accounts (id),
    kind                    TEXT NOT NULL DEFAULT 'employee' CHECK (kind IN ('employee', 'customer')),
    first_name              TEXT NOT NULL,
    last_name               TEXT NOT NULL,
    email                   TEXT NOT NULL,
    country                 TEXT NOT NULL CHECK (length(country) = 2),
    language                TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'es', 'fr', 'pt')),
    role_id                 BIGINT NOT NULL REFERENCES roles (id),
    status                  TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'locked', 'deactivated')),
    lock_reason             TEXT CHECK (lock_reason IN ('failed_logins', 'idle', 'admin')),
    failed_logins           INTEGER NOT NULL DEFAULT 0,
    last_login_at           TEXT,
    last_activity_at        TEXT,
    confirmed_at            TEXT,
    password_hash           TEXT,
    password_changed_at     TEXT,
    must_change_password    INTEGER NOT NULL DEFAULT 0,
    simulator_only          INTEGER NOT NULL DEFAULT 0,
    is_service_account      INTEGER NOT NULL DEFAULT 0,
    api_token_hash          TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    deactivated_at          TEXT
);
-- One user per email and account, whatever the case.
CREATE UNIQUE INDEX users_account_email ON users (account_id, lower(email));
-- LockIdleUsers: active users by last login / activity.
CREATE INDEX users_status_last_login ON users (status, last_login_at);
CREATE INDEX users_status_last_activity ON users (status, last_activity_at);
-- ExpirePasswords.
CREATE INDEX users_password_changed_at ON users (password_changed_at) WHERE status = 'active';

-- Which staged warning (14, 7, 1 days) was sent for which deadline: a warning is sent once.
CREATE TABLE user_warning_markers (
    user_id     BIGINT NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL CHECK (kind IN ('idle_lock', 'password_expiry')),
    deadline    TEXT NOT NULL,
    stage_days  INTEGER NOT NULL,
    sent_at     TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, deadline, stage_days)
);

CREATE TABLE user_permission_overrides (
    user_id     BIGINT NOT NULL REFERENCES users (id),
    permission  TEXT NOT NULL,
    granted     INTEGER NOT NULL,
    PRIMARY KEY (user_id, permission)
);

-- Break-glass admins and other users the idle sweep must never lock.
CREATE TABLE account_sweep_exemptions (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    PRIMARY KEY (account_id, user_id)
);

CREATE TABLE license_pools (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    country     TEXT NOT NULL CHECK (length(country) = 2),
    seats       INTEGER NOT NULL CHECK (seats >= 0),
    PRIMARY KEY (account_id, country)
);

-- A seat is taken while a license is 'active' or 'releasing'.
CREATE TABLE salesperson_licenses (
    id              INTEGER PRIMARY KEY,
    account_id      BIGINT NOT NULL REFERENCES accounts (id),
    user_id         BIGINT NOT NULL REFERENCES users (id),
    country         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active', 'releasing', 'released')),
    release_at      TEXT,
    released_at     TEXT,
    created_at      TEXT NOT NULL,
    FOREIGN KEY (account_id, country) REFERENCES license_pools (account_id, country),
    CHECK (state <> 'releasing' OR release_at IS NOT NULL)
);
-- At most one live license per user.
CREATE UNIQUE INDEX salesperson_licenses_one_live ON salesperson_licenses (user_id) WHERE state IN ('active', 'releasing');
CREATE INDEX salesperson_licenses_seats ON salesperson_licenses (account_id, country, state);
-- ReleaseDueLicenses.
CREATE INDEX salesperson_licenses_due ON salesperson_licenses (state, release_at);

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    leader_id   BIGINT NOT NULL REFERENCES users (id),
    created_at  TEXT NOT NULL
);
CREATE INDEX teams_leader ON teams (leader_id);
CREATE INDEX teams_account_created ON teams (account_id, created_at, id);

-- joined_at orders a user's teams; leaving closes the row.
CREATE TABLE team_memberships (
    id          INTEGER PRIMARY KEY,
    team_id     BIGINT NOT NULL REFERENCES teams (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    joined_at   TEXT NOT NULL,
    left_at     TEXT
);
CREATE UNIQUE INDEX team_memberships_current ON team_memberships (team_id, user_id) WHERE left_at IS NULL;
CREATE INDEX team_memberships_user ON team_memberships (user_id, joined_at);

CREATE TABLE opportunities (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    owner_id    BIGINT NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX opportunities_owner ON opportunities (owner_id);

CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    assignee_id BIGINT REFERENCES users (id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX contacts_assignee ON contacts (assignee_id);

CREATE TABLE tasks (
    id                  INTEGER PRIMARY KEY,
    account_id          BIGINT NOT NULL REFERENCES accounts (id),
    assignee_id         BIGINT REFERENCES users (id),
    title               TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('created', 'in_progress', 'completed')),
    transferable        INTEGER NOT NULL DEFAULT 0,
    transfer_reason     TEXT,
    created_at          TEXT NOT NULL
);
CREATE INDEX tasks_assignee_state ON tasks (assignee_id, state);

-- Playbooks are the seeds' "Sales Brains".
CREATE TABLE playbooks (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL
);

CREATE TABLE playbook_memberships (
    id          INTEGER PRIMARY KEY,
    playbook_id BIGINT NOT NULL REFERENCES playbooks (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    joined_at   TEXT NOT NULL,
    removed_at  TEXT
);
CREATE UNIQUE INDEX playbook_memberships_current ON playbook_memberships (playbook_id, user_id) WHERE removed_at IS NULL;
CREATE INDEX playbook_memberships_user ON playbook_memberships (user_id) WHERE removed_at IS NULL;

CREATE TABLE phone_numbers (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    country     TEXT NOT NULL CHECK (length(country) = 2),
    number      TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX phone_numbers_account_country ON phone_numbers (account_id, country) WHERE active = 1;

-- Sessions and API access tokens; only a hash of the secret is kept.
CREATE TABLE access_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL CHECK (kind IN ('session', 'api')),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX access_tokens_user_live ON access_tokens (user_id) WHERE revoked_at IS NULL;

CREATE TABLE integrations (
    id                  INTEGER PRIMARY KEY,
    user_id             BIGINT NOT NULL REFERENCES users (id),
    kind                TEXT NOT NULL,
    enabled             INTEGER NOT NULL DEFAULT 1,
    sync_frozen         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX integrations_user ON integrations (user_id);

CREATE TABLE subscriptions (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    plan        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'canceled')),
    canceled_at TEXT
);
CREATE INDEX subscriptions_user ON subscriptions (user_id);

CREATE TABLE email_blocklist (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    email       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (account_id, email)
);

-- Every change, with who asked for it and which job made it.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    actor       TEXT NOT NULL,
    job_id      BLOB,
    entity      TEXT NOT NULL,
    entity_id   BIGINT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);
CREATE INDEX audit_log_job ON audit_log (job_id);

-- The ledger: every accepted job, its state, attempts and last error. The database, not the
-- transport, is the record of what was accepted. Times are epoch milliseconds so the queue
-- can order and compare them cheaply on both backends.
CREATE TABLE jobs (
    id                  BLOB PRIMARY KEY,
    kind                TEXT NOT NULL,
    account_id          BIGINT,
    payload             TEXT NOT NULL,
    idempotency_key     TEXT UNIQUE,
    state               TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    run_at_ms           BIGINT NOT NULL,
    locked_by           TEXT,
    locked_at_ms        BIGINT,
    last_error          TEXT,
    created_at_ms       BIGINT NOT NULL,
    finished_at_ms      BIGINT
);
-- The embedded queue fetches from here: due jobs in order. Partial, so finished rows cost
-- nothing however many accumulate.
CREATE INDEX jobs_due ON jobs (run_at_ms, id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (locked_at_ms) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, kind);

CREATE TABLE job_attempt_errors (
    job_id      BLOB NOT NULL REFERENCES jobs (id),
    attempt     INTEGER NOT NULL,
    error       TEXT NOT NULL,
    permanent   INTEGER NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

-- A job's effects commit with its row here, so a replay finds it and changes nothing.
CREATE TABLE applied_jobs (
    job_id      BLOB PRIMARY KEY,
    kind        TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);
