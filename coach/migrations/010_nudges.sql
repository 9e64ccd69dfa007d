-- Opt-in nudges: one DM a few hours before the server's open round closes, for a member who hasn't answered it.

-- A member's nudge setting in one server. next_due (UTC) is when the nudge for the open round is due:
-- the round closes when the next one opens (guild_settings.next_due), so next_due = that - hours_before.
-- It is NULL while nudges are off, once this round's nudge was taken, and while the server is paused.
CREATE TABLE nudge_settings (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1,
    hours_before    INTEGER NOT NULL,
    next_due        INTEGER,
    on_at           INTEGER NOT NULL,              -- last switched on: ignored nudges are counted from here
    off_reason      TEXT,                          -- 'member', 'ignored' (3 in a row), 'dms_closed'
    off_at          INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
CREATE INDEX nudge_settings_due ON nudge_settings (next_due) WHERE next_due IS NOT NULL;

-- Whenever a server's next run moves (a round taken, /coach setup, pause, resume, a broken schedule), the
-- nudges of its members follow it in the same transaction: the open round now closes at the new next run.
CREATE TRIGGER nudges_follow_the_round AFTER UPDATE OF next_due ON guild_settings
WHEN NEW.next_due IS NOT OLD.next_due
BEGIN
    UPDATE nudge_settings
       SET next_due = CASE WHEN NEW.next_due IS NULL THEN NULL ELSE NEW.next_due - hours_before * 3600 END
     WHERE guild_id = NEW.guild_id AND enabled = 1;
END;

-- One nudge per member per server round: the unique row that makes a nudge exactly-once.
CREATE TABLE nudges (
    id              INTEGER PRIMARY KEY,
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    round_id        INTEGER NOT NULL,
    scheduled_at    INTEGER NOT NULL,
    closes_at       INTEGER NOT NULL,              -- when the round closes (the next one opens)
    state           TEXT    NOT NULL DEFAULT 'claimed'
                    CHECK (state IN ('claimed', 'sent', 'skipped', 'failed')),
    content         TEXT,                          -- the DM as first sent: a retry sends (and finds) the same
    pause           INTEGER NOT NULL DEFAULT 0,    -- the third ignored nudge: it says nudges pause
    channel_id      INTEGER,
    message_id      INTEGER,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    UNIQUE (guild_id, user_id, round_id)
);
CREATE INDEX nudges_member_sent ON nudges (guild_id, user_id, sent_at) WHERE state = 'sent';
