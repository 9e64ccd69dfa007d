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
