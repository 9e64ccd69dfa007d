-- Placeholder on branch h-voice only: migration 005 is reserved for another branch, and the loader refuses
-- gaps. Delete this file when merging; 006_voice.sql does not depend on it.
SELECT 1;
