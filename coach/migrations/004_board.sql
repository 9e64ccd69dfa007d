-- Leaderboard, seasons, weekly recap, data export and deletion.
-- Times are UTC unix seconds; local dates are ISO 'YYYY-MM-DD'.

-- Running totals per member, all time (season_id 0) and per season, kept by triggers on the points
-- ledger so the all-time and season boards read one row per member instead of summing the whole ledger
-- (measured: summing 90,000 ledger rows takes 35-75 ms even with a covering index; this takes ~1 ms).
-- The ledger stays the source of truth: Storage.rebuild_board_totals() recomputes these from it.
-- points: check-in and finish points; depth: reflection points; reached_at: when the member's latest
-- check-in/finish point was earned, i.e. when they reached their total (the board's last tie-break).
CREATE TABLE board_totals (
    guild_id        INTEGER NOT NULL,
    season_id       INTEGER NOT NULL,              -- 0 = all time, else seasons.id
    user_id         INTEGER NOT NULL,
    points          INTEGER NOT NULL DEFAULT 0,
    depth           INTEGER NOT NULL DEFAULT 0,
    reached_at      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, season_id, user_id)
) WITHOUT ROWID;

-- A point belongs to all time and to the newest season of its server that had started when it was earned.
CREATE TRIGGER board_totals_add AFTER INSERT ON points BEGIN
    INSERT INTO board_totals (guild_id, season_id, user_id, points, depth, reached_at)
    SELECT NEW.guild_id, s.id, NEW.user_id,
           CASE WHEN NEW.kind IN ('checkin', 'finish') THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind = 'reflection' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind IN ('checkin', 'finish') THEN NEW.created_at ELSE 0 END
    FROM (SELECT 0 AS id
          UNION ALL
          SELECT (SELECT id FROM seasons WHERE guild_id = NEW.guild_id AND started_at <= NEW.created_at
                  ORDER BY started_at DESC, id DESC LIMIT 1)) AS s
    WHERE s.id IS NOT NULL
    ON CONFLICT (guild_id, season_id, user_id) DO UPDATE SET
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
                      AND (board_totals.season_id = 0 OR board_totals.season_id =
                           (SELECT id FROM seasons s WHERE s.guild_id = p.guild_id AND s.started_at <= p.created_at
                            ORDER BY s.started_at DESC, s.id DESC LIMIT 1))), 0)
            ELSE reached_at END
    WHERE guild_id = OLD.guild_id AND user_id = OLD.user_id
    AND (season_id = 0 OR season_id = (SELECT id FROM seasons WHERE guild_id = OLD.guild_id
                                       AND started_at <= OLD.created_at ORDER BY started_at DESC, id DESC LIMIT 1));
END;

-- What is already in the ledger.
INSERT INTO board_totals (guild_id, season_id, user_id, points, depth, reached_at)
SELECT guild_id, 0, user_id,
       SUM(CASE WHEN kind IN ('checkin', 'finish') THEN amount ELSE 0 END),
       SUM(CASE WHEN kind = 'reflection' THEN amount ELSE 0 END),
       COALESCE(MAX(CASE WHEN kind IN ('checkin', 'finish') THEN created_at END), 0)
FROM points GROUP BY guild_id, user_id;

INSERT INTO board_totals (guild_id, season_id, user_id, points, depth, reached_at)
SELECT guild_id, season_id, user_id,
       SUM(CASE WHEN kind IN ('checkin', 'finish') THEN amount ELSE 0 END),
       SUM(CASE WHEN kind = 'reflection' THEN amount ELSE 0 END),
       COALESCE(MAX(CASE WHEN kind IN ('checkin', 'finish') THEN created_at END), 0)
FROM (SELECT p.*, (SELECT id FROM seasons s WHERE s.guild_id = p.guild_id AND s.started_at <= p.created_at
                   ORDER BY s.started_at DESC, s.id DESC LIMIT 1) AS season_id FROM points p)
WHERE season_id IS NOT NULL
GROUP BY guild_id, season_id, user_id;

-- Week and month boards sum the ledger over a short window: (guild, time) first, covering. The existing
-- points_board index already has that shape; the recap's finished projects need this one.
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
