-- One row per (schedule, scheduled tick): every worker process may try to fire a tick; the
-- primary key lets exactly one through, and the sweep job it enqueues is written in the
-- same transaction. No foreign key to `jobs`: the job may be pruned before the firing.
CREATE TABLE schedule_firings (
    schedule      TEXT NOT NULL,
    tick_at_ms    INTEGER NOT NULL,
    job_id        BLOB,
    fired_at      TEXT NOT NULL,
    -- Written by the sweep when it ends: what it changed and how it went.
    finished_at   TEXT,
    rows_changed  INTEGER,
    outcome       TEXT,
    PRIMARY KEY (schedule, tick_at_ms)
);
CREATE INDEX schedule_firings_job ON schedule_firings (job_id);

-- The release sweep walks the `releasing` licenses by id.
CREATE INDEX salesperson_licenses_releasing ON salesperson_licenses (id)
    WHERE state = 'releasing';
