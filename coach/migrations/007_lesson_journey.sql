-- The lesson journey: Your Turn exercises marked done (+1 depth point, kind 'exercise'), lessons a member opened,
-- tracks unlocked by depth points (told once), and the track a server reads after its current one ends.

-- The points ledger learns the kind 'exercise'. SQLite cannot change a CHECK constraint in place, so the table is
-- rebuilt: its board triggers are dropped first (so copying and dropping touch no totals), then recreated with
-- depth = reflections + exercises. Rows keep their ids; board_totals needs no change (no exercise rows exist yet).
DROP TRIGGER board_totals_add;
DROP TRIGGER board_totals_remove;

CREATE TABLE points_new (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('checkin', 'finish', 'reflection', 'exercise')),
    amount          INTEGER NOT NULL,
    ref             TEXT    NOT NULL,              -- what earned it: local date, project id, lesson id
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
           CASE WHEN NEW.kind IN ('checkin', 'finish') THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind IN ('reflection', 'exercise') THEN NEW.amount ELSE 0 END,
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

CREATE TRIGGER board_totals_remove AFTER DELETE ON points BEGIN
    UPDATE board_totals SET
        points = points - CASE WHEN OLD.kind IN ('checkin', 'finish') THEN OLD.amount ELSE 0 END,
        depth = depth - CASE WHEN OLD.kind IN ('reflection', 'exercise') THEN OLD.amount ELSE 0 END,
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

-- Lessons a member opened privately (/lesson show, /lesson next): /lesson next skips them.
CREATE TABLE lesson_reads (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    lesson_id       TEXT    NOT NULL,
    read_at         INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id, lesson_id)
) WITHOUT ROWID;

-- A track a member unlocked with depth points; the row is written with the notice that tells them (once).
CREATE TABLE lesson_unlocks (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    track           TEXT    NOT NULL,
    unlocked_at     INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id, track)
) WITHOUT ROWID;

-- The track a server reads when its current track ends (no row: the Core Track again).
CREATE TABLE lesson_next_track (
    guild_id        INTEGER PRIMARY KEY,
    track           TEXT    NOT NULL,
    chosen_at       INTEGER NOT NULL
);
