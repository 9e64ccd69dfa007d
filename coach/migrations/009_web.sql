-- The server's public web page (/coach web) and a member's choice to stay off every page (/me public).

-- A server whose admins switched its page on: the unguessable token in its address. Switching the page off
-- deletes the row (the old address answers 404 from then on); a new link replaces the token.
CREATE TABLE web_pages (
    guild_id        INTEGER PRIMARY KEY,
    token           TEXT    NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL
);

-- 0: the member asked to be left off every public page (/me public off). Default: shown.
ALTER TABLE members ADD COLUMN public INTEGER NOT NULL DEFAULT 1;

-- How many members answered on each local date, per server: the page's heatmap reads ~180 rows instead of
-- counting every check-in of the last 26 weeks (measured on the largest benchmark server: ~8 ms -> ~0.1 ms).
-- Kept by triggers on check-ins; Storage.checkins_per_day reads it.
CREATE TABLE checkin_days (
    guild_id        INTEGER NOT NULL,
    local_date      TEXT    NOT NULL,
    answers         INTEGER NOT NULL,
    PRIMARY KEY (guild_id, local_date)
) WITHOUT ROWID;

CREATE TRIGGER checkin_days_add AFTER INSERT ON checkins BEGIN
    INSERT INTO checkin_days (guild_id, local_date, answers) VALUES (NEW.guild_id, NEW.local_date, 1)
    ON CONFLICT (guild_id, local_date) DO UPDATE SET answers = answers + 1;
END;

CREATE TRIGGER checkin_days_remove AFTER DELETE ON checkins BEGIN
    UPDATE checkin_days SET answers = answers - 1 WHERE guild_id = OLD.guild_id AND local_date = OLD.local_date;
END;

CREATE TRIGGER checkin_days_move AFTER UPDATE OF guild_id, local_date ON checkins
WHEN OLD.guild_id != NEW.guild_id OR OLD.local_date != NEW.local_date BEGIN
    UPDATE checkin_days SET answers = answers - 1 WHERE guild_id = OLD.guild_id AND local_date = OLD.local_date;
    INSERT INTO checkin_days (guild_id, local_date, answers) VALUES (NEW.guild_id, NEW.local_date, 1)
    ON CONFLICT (guild_id, local_date) DO UPDATE SET answers = answers + 1;
END;

INSERT INTO checkin_days (guild_id, local_date, answers)
SELECT guild_id, local_date, COUNT(*) FROM checkins GROUP BY guild_id, local_date;
