-- One running-totals period per server, kind and start for weeks and months: two processes asking for a new
-- week's board at the same moment make it once (the second's insert meets this index and reads the first's).
-- (Seasons are made by /coach season start, one at a time, and keep their own lookup.)
CREATE UNIQUE INDEX board_periods_window ON board_periods (guild_id, kind, starts_at) WHERE kind IN ('week', 'month');
