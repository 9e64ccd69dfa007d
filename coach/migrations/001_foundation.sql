-- Bounce schema, version 1. Times are UTC unix seconds (INTEGER); local dates are ISO 'YYYY-MM-DD'.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per server: the daily Accountability Check schedule.
CREATE TABLE guild_settings (
    guild_id        INTEGER PRIMARY KEY,
    channel_id      INTEGER NOT NULL,
    time_local      TEXT    NOT NULL,              -- 'HH:MM'
    timezone        TEXT    NOT NULL,              -- IANA name
    days            INTEGER NOT NULL,              -- weekday bitmask, Monday = 1
    role_id         INTEGER,
    paused          INTEGER NOT NULL DEFAULT 0,
    next_due        INTEGER,                       -- next run (UTC); NULL while paused
    last_error      TEXT,                          -- what went wrong on the last post, for admins
    last_error_at   INTEGER,
    error_told      INTEGER NOT NULL DEFAULT 0,    -- the admin has been told about last_error
    removed_at      INTEGER,                       -- the bot was removed from the server
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX guild_settings_due ON guild_settings (next_due) WHERE next_due IS NOT NULL;

-- One round per server per local date: the unique row that makes posting exactly-once.
CREATE TABLE rounds (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    local_date      TEXT    NOT NULL,
    scheduled_at    INTEGER NOT NULL,
    channel_id      INTEGER NOT NULL,
    message_id      INTEGER,
    prompt_index    INTEGER,
    state           TEXT    NOT NULL DEFAULT 'claimed'
                    CHECK (state IN ('claimed', 'posted', 'failed', 'missed')),
    late            INTEGER NOT NULL DEFAULT 0,
    manual          INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    tally_dirty     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    posted_at       INTEGER,
    UNIQUE (guild_id, local_date)
);
CREATE INDEX rounds_guild_posted ON rounds (guild_id, state, local_date);

CREATE TABLE projects (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    name_key        TEXT    NOT NULL,              -- casefolded name
    status          TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'finished', 'dropped')),
    deadline        TEXT,                          -- local date
    created_at      INTEGER NOT NULL,
    closed_at       INTEGER,
    announced       INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX projects_active_name ON projects (guild_id, user_id, name_key) WHERE status = 'active';
CREATE INDEX projects_member ON projects (guild_id, user_id, status);

-- One answer per member per server per local date; answering again edits it.
CREATE TABLE checkins (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    local_date      TEXT    NOT NULL,
    round_id        INTEGER REFERENCES rounds (id) ON DELETE SET NULL,
    status          TEXT    NOT NULL CHECK (status IN ('finished', 'unfinished', 'skipped')),
    project_id      INTEGER REFERENCES projects (id) ON DELETE SET NULL,
    note            TEXT,
    via             TEXT    NOT NULL DEFAULT 'button',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (guild_id, user_id, local_date)
);
CREATE INDEX checkins_round ON checkins (round_id, status);
CREATE INDEX checkins_guild_date ON checkins (guild_id, local_date);

-- Append-only points ledger. kind: 'checkin' (+1), 'finish' (+5), 'reflection' (+2 depth).
CREATE TABLE points (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('checkin', 'finish', 'reflection')),
    amount          INTEGER NOT NULL,
    ref             TEXT    NOT NULL,              -- what earned it: local date, project id, lesson id
    created_at      INTEGER NOT NULL,
    UNIQUE (guild_id, user_id, kind, ref)
);
CREATE INDEX points_board ON points (guild_id, created_at, user_id, amount, kind);

-- Per-member settings in a server.
CREATE TABLE members (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    display_name    TEXT    NOT NULL DEFAULT '',
    announce        INTEGER NOT NULL DEFAULT 1,
    notice          TEXT,                          -- something to tell the member at their next command
    first_seen      INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE away_periods (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    start_date      TEXT    NOT NULL,
    end_date        TEXT    NOT NULL
);
CREATE INDEX away_member ON away_periods (guild_id, user_id);

CREATE TABLE seasons (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    started_at      INTEGER NOT NULL
);
CREATE INDEX seasons_guild ON seasons (guild_id, started_at);
