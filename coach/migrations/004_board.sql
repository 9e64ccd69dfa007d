-- Leaderboard, seasons, weekly recap, data export and deletion.
-- Times are UTC unix seconds; local dates are ISO 'YYYY-MM-DD'.

-- Leaderboard periods: each season, and the server's current local week and month (created the first time
-- someone asks for that week's or month's board; older ones are dropped then). Times are UTC.
CREATE TABLE board_periods (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('season', 'week', 'month')),
    starts_at       INTEGER NOT NULL,
    season_id       INTEGER                        -- seasons.id for kind 'season'
);
CREATE INDEX board_periods_lookup ON board_periods (guild_id, kind, starts_at);

-- Running totals per member, all time (period_id 0) and per period, kept by triggers on the points ledger so
-- a board reads one row per member instead of summing the ledger (measured: summing a month of the largest
-- server's ledger, ~20,000 rows, takes 10-16 ms even with a covering index; all time 35-75 ms; this ~1 ms).
-- The ledger stays the source of truth: Storage.rebuild_board_totals() recomputes these from it.
-- points: check-in and finish points; depth: reflection points; reached_at: when the member's latest
-- check-in/finish point in the period was earned, i.e. when they reached their total (the last tie-break).
CREATE TABLE board_totals (
    guild_id        INTEGER NOT NULL,
    period_id       INTEGER NOT NULL,              -- 0 = all time, else board_periods.id
    user_id         INTEGER NOT NULL,
    points          INTEGER NOT NULL DEFAULT 0,
    depth           INTEGER NOT NULL DEFAULT 0,
    reached_at      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, period_id, user_id)
) WITHOUT ROWID;

-- A point counts for all time and, per kind, for the newest period of its server that had started when it
-- was earned.
CREATE TRIGGER board_totals_add AFTER INSERT ON points BEGIN
    INSERT INTO board_totals (guild_id, period_id, user_id, points, depth, reached_at)
    SELECT NEW.guild_id, b.id, NEW.user_id,
           CASE WHEN NEW.kind IN ('checkin', 'finish') THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind = 'reflection' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind IN ('checkin', 'finish') THEN NEW.created_at ELSE 0 END
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

-- The ledger is append-only; deletions happen only for /me forget and the purge of a removed server, which
-- drop the totals rows first (so this finds nothing to update). Kept correct for any other delete anyway.
CREATE TRIGGER board_totals_remove AFTER DELETE ON points BEGIN
    UPDATE board_totals SET
        points = points - CASE WHEN OLD.kind IN ('checkin', 'finish') THEN OLD.amount ELSE 0 END,
        depth = depth - CASE WHEN OLD.kind = 'reflection' THEN OLD.amount ELSE 0 END,
        reached_at = CASE WHEN OLD.kind IN ('checkin', 'finish') AND OLD.created_at >= reached_at THEN
            COALESCE((SELECT MAX(p.created_at) FROM points p
                      WHERE p.guild_id = OLD.guild_id AND p.user_id = OLD.user_id AND p.kind IN ('checkin', 'finish')
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

-- What is already in the ledger (there are no periods yet, so all time only).
INSERT INTO board_totals (guild_id, period_id, user_id, points, depth, reached_at)
SELECT guild_id, 0, user_id,
       SUM(CASE WHEN kind IN ('checkin', 'finish') THEN amount ELSE 0 END),
       SUM(CASE WHEN kind = 'reflection' THEN amount ELSE 0 END),
       COALESCE(MAX(CASE WHEN kind IN ('checkin', 'finish') THEN created_at END), 0)
FROM points GROUP BY guild_id, user_id;

-- Seasons started before this migration become periods; their totals are rebuilt from the ledger.
INSERT INTO board_periods (guild_id, kind, starts_at, season_id)
SELECT guild_id, 'season', started_at, id FROM seasons ORDER BY started_at, id;

INSERT INTO board_totals (guild_id, period_id, user_id, points, depth, reached_at)
SELECT guild_id, period_id, user_id,
       SUM(CASE WHEN kind IN ('checkin', 'finish') THEN amount ELSE 0 END),
       SUM(CASE WHEN kind = 'reflection' THEN amount ELSE 0 END),
       COALESCE(MAX(CASE WHEN kind IN ('checkin', 'finish') THEN created_at END), 0)
FROM (SELECT p.*, (SELECT id FROM board_periods b WHERE b.guild_id = p.guild_id AND b.kind = 'season'
                   AND b.starts_at <= p.created_at ORDER BY b.starts_at DESC, b.id DESC LIMIT 1) AS period_id
      FROM points p)
WHERE period_id IS NOT NULL
GROUP BY guild_id, period_id, user_id;

-- The recap's finished projects of a week.
CREATE INDEX projects_finished ON projects (guild_id, closed_at) WHERE status = 'finished';
-- checkins.project_id references projects (ON DELETE SET NULL): without an index every deleted project
-- (/me forget, the purge) would scan the whole check-ins table.
CREATE INDEX checkins_project ON checkins (project_id);

-- One weekly recap per server per week (the Monday of the week it sums up): the row that makes it exactly once.
CREATE TABLE recaps (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    week            TEXT    NOT NULL,              -- local date of that week's Monday
    state           TEXT    NOT NULL DEFAULT 'claimed'
                    CHECK (state IN ('claimed', 'posted', 'failed', 'empty')),
    channel_id      INTEGER,
    message_id      INTEGER,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    UNIQUE (guild_id, week)
);

-- A confirmation someone asked for and has not clicked yet (new season, forget me): the newest per action.
CREATE TABLE board_confirms (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    action          TEXT    NOT NULL,              -- 'season' or 'forget'
    token           INTEGER NOT NULL,              -- carried by the button; a newer request replaces it
    payload         TEXT,                          -- e.g. the season's name
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id, action)
);

-- Servers that removed the bot: their data is purged 30 days later unless the bot is added back.
-- (guild_settings.removed_at is set too, but a server may have data without ever running /coach setup.)
CREATE TABLE guild_removals (
    guild_id        INTEGER PRIMARY KEY,
    removed_at      INTEGER NOT NULL
);
CREATE INDEX guild_removals_due ON guild_removals (removed_at);
