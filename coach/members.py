"""Who a member is in public: the one name shown for them in a server, and whether they may be named at all.

Both rules are a member's own choices, so every place that shows members reads them from here:

* ``display_name``: the server nickname when the interaction carries one, else the global name, else the
  username. Only an interaction inside the server knows the nickname; a DM carries the global name at most,
  so a DM never replaces the name a server interaction stored (``Storage.touch_member(from_server=False)``).
* ``may_name_publicly``: a member who switched announcements off (``/me announce off``) is never named in a
  public place: the finished-project celebration, the weekly recap, and any later public surface (the planned
  server page). Their check-ins and finished projects still count in every total; they are just not named.
  Storage registers this very function with SQLite under the same name, so queries filter with
  ``may_name_publicly(members.announce)`` and the rule lives in one place.
"""

from __future__ import annotations

#: A member the bot has never stored (no members row) has made no choice yet: the default is on, as in the table.
ANNOUNCE_DEFAULT = True


def display_name(nick: str | None, global_name: str | None, username: str) -> str:
    """The one name for a member in a server: nickname, else global name, else username (stored raw; made safe
    with ``coach.text.safe_name`` when shown)."""
    return nick or global_name or username


def may_name_publicly(announce: object) -> bool:
    """Whether a member may be named in a public post, from their ``announce`` setting (True/False, the stored
    1/0, or None when the member has no stored row)."""
    if announce is None:
        return ANNOUNCE_DEFAULT
    return bool(announce)
