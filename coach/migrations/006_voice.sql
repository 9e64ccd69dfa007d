-- What the coach has said, so it does not say it again too soon.
-- One row per (server, member, key); user_id 0 is the server as a whole (recap intros, announcements).
-- key is a situation's rotation (e.g. 'finished', 'finished.np' for the lines without a project,
-- 'dm_round') whose value lists the short ids of the lines used in the current rotation, oldest first,
-- separated by spaces; or a marker such as 'valley.run' whose value names the run of Unfinished answers
-- the valley reply was last given for. Rows are updated by compare-and-swap on value, so processes
-- sharing the database never hand the same member the same line twice in one rotation.
CREATE TABLE voice_memory (
    guild_id        INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    key             TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    PRIMARY KEY (guild_id, user_id, key)
) WITHOUT ROWID;
