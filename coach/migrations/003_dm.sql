-- DM check-ins: each member's own time, time zone and days, per server.

-- A member's DM schedule for one server. next_due (UTC) is NULL while DMs are off.
CREATE TABLE dm_schedules (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1,
    time_local      TEXT    NOT NULL,              -- 'HH:MM'
    timezone        TEXT    NOT NULL,              -- IANA name
    days            INTEGER NOT NULL,              -- weekday bitmask, Monday = 1
    next_due        INTEGER,
    off_reason      TEXT,                          -- 'member' (switched off) or 'dms_closed' (Discord 50007)
    off_at          INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
CREATE INDEX dm_schedules_due ON dm_schedules (next_due) WHERE next_due IS NOT NULL;
CREATE INDEX dm_schedules_user ON dm_schedules (user_id);

-- The bot's DM channel with each user: created once (POST /users/@me/channels), then one request per DM.
CREATE TABLE dm_channels (
    user_id         INTEGER PRIMARY KEY,
    channel_id      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

-- One DM round per member per server per member-local date: the unique row that makes a DM exactly-once.
CREATE TABLE dm_rounds (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    local_date      TEXT    NOT NULL,
    scheduled_at    INTEGER NOT NULL,
    closes_at       INTEGER NOT NULL,              -- answers count until the member's next scheduled DM
    state           TEXT    NOT NULL DEFAULT 'claimed'
                    CHECK (state IN ('claimed', 'sent', 'answered', 'cancelled', 'failed')),
    late            INTEGER NOT NULL DEFAULT 0,
    channel_id      INTEGER,
    message_id      INTEGER,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    claimed_at      INTEGER NOT NULL,              -- when a sender took it; a stale claim is taken over
    sent_at         INTEGER,
    UNIQUE (guild_id, user_id, local_date)
);
CREATE INDEX dm_rounds_user_open ON dm_rounds (user_id, state, closes_at);
CREATE INDEX dm_rounds_claimed ON dm_rounds (claimed_at) WHERE state = 'claimed';

-- The note of a plain-text DM reply the bot asked about (which server / which status), until answered.
CREATE TABLE dm_pending (
    user_id         INTEGER PRIMARY KEY,
    note            TEXT,
    created_at      INTEGER NOT NULL
);
