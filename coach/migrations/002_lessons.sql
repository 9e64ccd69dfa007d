-- Lessons: each server's weekly lesson schedule, one post per server per local date, private reflections.
-- Times are UTC unix seconds; local dates are ISO 'YYYY-MM-DD'.

-- One row per server: where and when lessons are posted.
CREATE TABLE lesson_settings (
    guild_id        INTEGER PRIMARY KEY,
    channel_id      INTEGER NOT NULL,
    weekday         INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),   -- Monday = 0
    time_local      TEXT    NOT NULL,              -- 'HH:MM'
    timezone        TEXT    NOT NULL,              -- IANA name, taken from /coach setup when configured
    next_due        INTEGER,                       -- next post (UTC)
    last_error      TEXT,                          -- why the last lesson post failed, for admins
    last_error_at   INTEGER,
    error_told      INTEGER NOT NULL DEFAULT 0,    -- an admin has been told about last_error
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX lesson_settings_due ON lesson_settings (next_due) WHERE next_due IS NOT NULL;

-- One lesson post per server per local date: the unique row written before posting (exactly once).
-- The server's next lesson is the one after its latest 'posted' row, in track order.
CREATE TABLE lesson_posts (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    local_date      TEXT    NOT NULL,
    lesson_id       TEXT    NOT NULL,
    scheduled_at    INTEGER NOT NULL,
    channel_id      INTEGER NOT NULL,
    message_id      INTEGER,
    state           TEXT    NOT NULL DEFAULT 'claimed' CHECK (state IN ('claimed', 'posted', 'failed')),
    late            INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    posted_at       INTEGER,
    UNIQUE (guild_id, local_date)
);
CREATE INDEX lesson_posts_guild ON lesson_posts (guild_id, state, local_date);
CREATE INDEX lesson_posts_claimed ON lesson_posts (scheduled_at) WHERE state = 'claimed';

-- A member's private reflection on a lesson; writing again edits it. Depth points live in the points ledger.
CREATE TABLE reflections (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    lesson_id       TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id, lesson_id)
);
