"""Safety (issue 9, item 10): links in member text never unfurl in public posts, and the role the rounds ping
must be one the bot can really ping, checked at `/coach setup`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from coach.text import defuse, safe_name, safe_title
from tests.conftest import Harness, eventually
from tests.fakediscord.world import EVERYONE_DEFAULT, MENTION_EVERYONE

BARE_LINK = re.compile(r"(?<!<)https?://")


def test_links_are_wrapped_everything_else_escaped() -> None:
    text = "Mix for https://youtu.be/a_b?x=1, see <https://a.b/c> @everyone **now**"
    out = defuse(text)
    assert out == ("Mix for <https://youtu.be/a_b?x=1>, see <https://a.b/c> @\u200beveryone \\*\\*now\\*\\*")
    assert not BARE_LINK.search(out)
    assert safe_title("http://x.io/my_track") == "<http://x.io/my_track>"
    assert safe_name("DJ https://soundcloud.com/dj") == "DJ <https://soundcloud.com/dj>"


async def test_a_link_in_a_finished_projects_name_does_not_unfurl(running: Harness) -> None:
    h, alice = running, running.studio.alice
    await h.setup_checkin("20:00", "Europe/Berlin")
    name = "Remix of https://soundcloud.com/someone/track_1"
    await (await h.slash(alice, "project start", {"name": name})).wait_text()
    done = await h.slash(alice, "project finish", {"name": name})
    assert "<https://soundcloud.com/someone/track_1>" in await done.wait_text()
    [post] = await eventually(lambda: h.fake.messages[h.studio.channel])
    assert "<https://soundcloud.com/someone/track_1>" in post["content"]
    assert not BARE_LINK.search(post["content"])


async def test_the_recap_shows_links_wrapped(running: Harness) -> None:
    from tests.test_rounds import at, utc

    h, alice = running, running.studio.alice
    await h.setup_checkin("20:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 19, 0, 5))
    await (await h.slash(alice, "checkin", {"status": "finished", "project": "see https://x.io/a"})).wait_text()
    await (await h.slash(alice, "project finish", {"name": "see https://x.io/a"})).wait_text()
    for day in range(3, 10):
        await at(h, utc(2026, 3, day, 19, 0, 5))
    recap = await eventually(lambda: [m for m in h.fake.messages[h.studio.channel]
                                      if m.get("embeds") and m["embeds"][0]["title"].startswith("Weekly recap")])
    finished = next(f["value"] for f in recap[0]["embeds"][0]["fields"] if f["name"].startswith("Finished"))
    assert "<https://x.io/a>" in finished and not BARE_LINK.search(finished)


async def test_setup_refuses_a_role_the_bot_could_not_ping(running: Harness) -> None:
    fake, studio = running.fake, running.studio
    fake.set_role_permissions(studio.guild, studio.guild, EVERYONE_DEFAULT & ~MENTION_EVERYONE)
    quiet = fake.add_role(studio.guild, "accountability")
    loud = fake.add_role(studio.guild, "check-in pings", mentionable=True)
    await fake.sync()
    handle = await running.slash(studio.admin, "coach setup", {"channel": studio.channel, "time": "20:00",
                                                               "timezone": "Europe/Berlin", "role": quiet})
    text = await handle.wait_text()
    assert "isn't mentionable" in text and "Allow anyone to @mention this role" in text and handle.ephemeral
    assert await running.bot.storage.get_guild(studio.guild) is None  # nothing changed
    # A mentionable role is fine, and the round really pings it.
    assert "All set" in await running.setup_checkin("20:00", "Europe/Berlin", role=loud)
    # So is any role once the bot may mention all roles in that channel.
    fake.set_role_permissions(studio.guild, fake.bot_role_id(studio.guild),
                              int(fake.guild(studio.guild).roles[fake.bot_role_id(studio.guild)]["permissions"])
                              | MENTION_EVERYONE)
    await fake.sync()
    assert "Updated" in await running.setup_checkin("20:00", "Europe/Berlin", role=quiet)
    running.clock.set(datetime(2026, 3, 2, 19, 0, 5, tzinfo=UTC))
    await running.tick()
    [message] = running.round_messages()
    assert message["mention_roles"] == [str(quiet)]
