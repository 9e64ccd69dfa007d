-- One outbox for every scheduled effect (channel rounds, DM rounds, lesson posts, weekly recaps).
-- Taking due work advances the schedule and inserts the kind's own unique row plus its outbox row in one
-- transaction. A sender leases a row (lease_owner, lease_until), posts, and records the message and the
-- outcome in one transaction. Any process takes over a row whose lease ran out.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,              -- 'round', 'dm', 'lesson', 'recap'
    ref_id          INTEGER NOT NULL,              -- the kind's row: rounds.id, dm_rounds.id, ...
    guild_id        INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,              -- when it was scheduled (UTC); oldest goes first
    expires_at      INTEGER NOT NULL,              -- not posted after this (the grace window)
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'done', 'skipped', 'failed')),
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    next_try_at     INTEGER NOT NULL,              -- backoff after a transient failure
    attempts        INTEGER NOT NULL DEFAULT 0,
    first_try_at    INTEGER,                       -- the first lease: past Discord's nonce window, look first
    error           TEXT,                          -- why it was skipped, failed, or is being retried
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    UNIQUE (kind, ref_id)
);
CREATE INDEX outbox_ready ON outbox (kind, due_at) WHERE state = 'pending';
CREATE INDEX outbox_guild ON outbox (guild_id, state);

-- The server round a DM round delivers (its answers count for that round's date).
ALTER TABLE dm_rounds ADD COLUMN round_id INTEGER;
-- The round whose week a recap sums up (its channel and date).
ALTER TABLE recaps ADD COLUMN round_id INTEGER;

-- Claims left by an older Bounce (before the outbox) go out through it, within three hours.
INSERT INTO outbox (kind, ref_id, guild_id, due_at, expires_at, next_try_at, created_at)
    SELECT 'round', id, guild_id, scheduled_at, scheduled_at + 10800, scheduled_at, created_at
    FROM rounds WHERE state = 'claimed';
INSERT INTO outbox (kind, ref_id, guild_id, due_at, expires_at, next_try_at, created_at)
    SELECT 'lesson', id, guild_id, scheduled_at, scheduled_at + 10800, scheduled_at, created_at
    FROM lesson_posts WHERE state = 'claimed';
INSERT INTO outbox (kind, ref_id, guild_id, due_at, expires_at, next_try_at, created_at)
    SELECT 'dm', id, guild_id, scheduled_at, scheduled_at + 10800, scheduled_at, created_at
    FROM dm_rounds WHERE state = 'claimed';
UPDATE recaps SET state = 'failed', error = 'interrupted' WHERE state = 'claimed';
