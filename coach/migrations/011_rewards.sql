-- Rewards and corrections: admin corrections of the points ledger, streak freezes, role rewards.

-- The points ledger learns the kind 'adjust' (an admin's correction, /coach adjust): it counts on the board like
-- check-in and finish points. As in 007, SQLite cannot change a CHECK in place: the board triggers are dropped
-- first (copying and dropping touch no totals), the table is rebuilt with its ids, and the triggers come back
-- with points = check-ins + finishes + adjustments. board_totals needs no change (no adjust rows exist yet).
DROP TRIGGER board_totals_add;
DROP TRIGGER board_totals_remove;

CREATE TABLE points_new (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('checkin', 'finish', 'reflection', 'exercise', 'adjust')),
    amount          INTEGER NOT NULL,
    ref             TEXT    NOT NULL,              -- what earned it: local date, project id, lesson id, correction id
    created_at      INTEGER NOT NULL,
    UNIQUE (guild_id, user_id, kind, ref)
);
INSERT INTO points_new (id, guild_id, user_id, kind, amount, ref, created_at)
SELECT id, guild_id, user_id, kind, amount, ref, created_at FROM points;
DROP TABLE points;
ALTER TABLE points_new RENAME TO points;
CREATE INDEX points_board ON points (guild_id, created_at, user_id, amount, kind);

CREATE TRIGGER board_totals_add AFTER INSERT ON points BEGIN
    INSERT INTO board_totals (guild_id, period_id, user_id, points, depth, reached_at)
    SELECT NEW.guild_id, b.id, NEW.user_id,
           CASE WHEN NEW.kind IN ('checkin', 'finish', 'adjust') THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind IN ('reflection', 'exercise') THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind IN ('checkin', 'finish', 'adjust') THEN NEW.created_at ELSE 0 END
    FROM (SELECT 0 AS id
          UNION ALL SELECT (SELECT id FROM board_periods WHERE guild_id = NEW.guild_id AND kind = 'season'
                            AND starts_at <= NEW.created_at ORDER BY starts_at DESC, id DESC LIMIT 1)
          UNION ALL SELECT (SELECT id FROM board_periods WHERE guild_id = NEW.guild_id AND kind = 'week'
                            AND starts_at <= NEW.created_at ORDER BY starts_at DESC, id DESC LIMIT 1)
          UNION ALL SELECT (SELECT id FROM board_periods WHERE guild_id = NEW.guild_id AND kind = 'month'
                            AND starts_at <= NEW.created_at ORDER BY starts_at DESC, id DESC LIMIT 1)) AS b
    WHERE b.id IS NOT NULL
    ON CONFLICT (guild_id, period_id, user_id) DO UPDATE SET
        points = points + excluded.points,
        depth = depth + excluded.depth,
        reached_at = MAX(reached_at, excluded.reached_at);
END;

-- /coach undo deletes a check-in's point (the ledger row of the check-in it removes): totals follow here.
CREATE TRIGGER board_totals_remove AFTER DELETE ON points BEGIN
    UPDATE board_totals SET
        points = points - CASE WHEN OLD.kind IN ('checkin', 'finish', 'adjust') THEN OLD.amount ELSE 0 END,
        depth = depth - CASE WHEN OLD.kind IN ('reflection', 'exercise') THEN OLD.amount ELSE 0 END,
        reached_at = CASE WHEN OLD.kind IN ('checkin', 'finish', 'adjust') AND OLD.created_at >= reached_at THEN
            COALESCE((SELECT MAX(p.created_at) FROM points p
                      WHERE p.guild_id = OLD.guild_id AND p.user_id = OLD.user_id
                      AND p.kind IN ('checkin', 'finish', 'adjust')
                      AND (board_totals.period_id = 0 OR board_totals.period_id =
                           (SELECT q.id FROM board_periods q WHERE q.guild_id = p.guild_id
                            AND q.kind = (SELECT kind FROM board_periods WHERE id = board_totals.period_id)
                            AND q.starts_at <= p.created_at ORDER BY q.starts_at DESC, q.id DESC LIMIT 1))), 0)
            ELSE reached_at END
    WHERE guild_id = OLD.guild_id AND user_id = OLD.user_id
    AND (period_id = 0 OR period_id IN (
        SELECT (SELECT id FROM board_periods WHERE guild_id = OLD.guild_id AND kind = k.kind
                AND starts_at <= OLD.created_at ORDER BY starts_at DESC, id DESC LIMIT 1)
        FROM (SELECT 'season' AS kind UNION ALL SELECT 'week' UNION ALL SELECT 'month') AS k));
END;

-- Every admin correction, for the member (/me export) and the admins (/coach export): an adjustment (its ledger
-- row is points kind 'adjust' with ref 'c<id>') or an undone check-in (its check-in and point are deleted; this
-- row remembers what was removed).
CREATE TABLE corrections (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,              -- the member corrected
    kind            TEXT    NOT NULL CHECK (kind IN ('adjust', 'undo')),
    amount          INTEGER NOT NULL,              -- points added (negative: taken)
    local_date      TEXT,                          -- undo: the check-in's date
    status          TEXT,                          -- undo: what that check-in said
    reason          TEXT,
    admin_id        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX corrections_guild ON corrections (guild_id, id);

-- Per-server reward settings (no row: the defaults). freezes: streak freezes on (1) or off (0).
CREATE TABLE reward_settings (
    guild_id        INTEGER PRIMARY KEY,
    freezes         INTEGER NOT NULL DEFAULT 1,
    updated_at      INTEGER NOT NULL
);

-- Role rewards (/coach rewards): a role given at a threshold of a member's streak, check-ins, finished projects
-- or depth points, or (kind 'weekly', threshold = top N) to the top of last week's board when the recap posts.
CREATE TABLE role_rewards (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('streak', 'checkins', 'finished', 'depth', 'weekly')),
    threshold       INTEGER NOT NULL,              -- weekly: how many of the top get it
    role_id         INTEGER NOT NULL,
    keep            INTEGER NOT NULL DEFAULT 0,    -- streak: 1 = the role stays when the streak breaks
    last_error      TEXT,                          -- the latest change that failed (role deleted, no permission)
    last_error_at   INTEGER,
    created_at      INTEGER NOT NULL,
    UNIQUE (guild_id, kind, role_id)
);
CREATE UNIQUE INDEX role_rewards_one_weekly ON role_rewards (guild_id) WHERE kind = 'weekly';

-- Who holds a reward's role as Bounce gave it: the row is written with the change that adds the role and deleted
-- with the change that takes it, so each change is queued exactly once.
CREATE TABLE role_holders (
    guild_id        INTEGER NOT NULL,
    reward_id       INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    since           INTEGER NOT NULL,
    PRIMARY KEY (guild_id, reward_id, user_id)
) WITHOUT ROWID;

-- One role change to make on Discord; the outbox's kind 'role' points here.
CREATE TABLE role_changes (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    reward_id       INTEGER NOT NULL,
    role_id         INTEGER NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('add', 'remove')),
    state           TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done', 'skipped', 'failed')),
    error           TEXT,
    created_at      INTEGER NOT NULL
);

-- Members whose points changed in a server with role rewards: the rewards sweep looks at them next (a row is
-- written in the transaction of the point, so no crossing is missed).
CREATE TABLE role_dirty (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    seq             INTEGER NOT NULL,              -- changes with every mark: the sweep clears only what it saw
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;
CREATE TRIGGER role_dirty_mark AFTER INSERT ON points
WHEN EXISTS (SELECT 1 FROM role_rewards WHERE guild_id = NEW.guild_id AND kind != 'weekly') BEGIN
    INSERT INTO role_dirty (guild_id, user_id, seq) VALUES (NEW.guild_id, NEW.user_id, NEW.id)
    ON CONFLICT (guild_id, user_id) DO UPDATE SET seq = role_dirty.seq + 1;
END;

-- The latest posted round each server's streak roles were checked after (a round posted: streaks may have broken).
CREATE TABLE role_streak_checks (
    guild_id        INTEGER PRIMARY KEY,
    round_date      TEXT    NOT NULL
);
