-- When the bot last knew a DM member was still in the server (switching DMs on counts). Without the members
-- intent the bot hears nothing when someone leaves, so the DM sender asks Discord about once a week.
ALTER TABLE dm_schedules ADD COLUMN member_checked_at INTEGER;
UPDATE dm_schedules SET member_checked_at = updated_at;
