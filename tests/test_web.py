"""The web server in the bot process: /coach web, /me public, the server page, /healthz and /metrics, through
the loopback Discord and real HTTP requests."""

from __future__ import annotations

import asyncio
import html as html_lib
import re
from datetime import date, timedelta

import pytest

from coach import metrics, webpage
from coach.clock import to_unix
from tests.conftest import Harness, eventually
from tests.databases import database, sqlite_only
from tests.fakediscord import FakeDiscordError
from tests.web_support import MALLORY, base_url, build_community, get, page_on, web

# ----------------------------------------------------------------------------- pure parts


def test_tokens_are_long_random_and_url_safe() -> None:
    tokens = {webpage.new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(webpage.looks_like_token(t) and len(t) >= 22 for t in tokens)
    assert not webpage.looks_like_token("../../etc/passwd")
    assert not webpage.looks_like_token("short")


def test_heatmap_shades_days_by_share_of_the_busiest() -> None:
    today = date(2026, 3, 4)  # a Wednesday
    counts = {"2026-03-02": 8, "2026-03-03": 2, "2026-03-04": 1, "2025-01-01": 99}  # the last is out of range
    grid = webpage.heatmap(counts, today, weeks=4)
    assert grid.busiest == 8 and grid.total == 11 and grid.days == 3 and grid.weeks == 4
    assert len(grid.cells) == 3 * 7 + 3  # three full weeks, then Monday to Wednesday
    levels = {c.title.split(":")[0]: c.level for c in grid.cells}
    assert levels["Mon 2 Mar 2026"] == 4 and levels["Tue 3 Mar 2026"] == 1 and levels["Wed 4 Mar 2026"] == 1
    assert levels["Mon 23 Feb 2026"] == 0
    assert "8 check-ins" in next(c.title for c in grid.cells if c.title.startswith("Mon 2 Mar"))
    assert "1 check-in" in next(c.title for c in grid.cells if c.title.startswith("Wed 4 Mar"))
    empty = webpage.heatmap({}, today, weeks=4)
    assert empty.busiest == 0 and {c.level for c in empty.cells} == {0}


def test_error_codes_for_metrics() -> None:
    class Failure(Exception):
        def __init__(self, status: int, code: int) -> None:
            self.status, self.code = status, code

    assert metrics.error_code(Failure(403, 50013)) == "50013"
    assert metrics.error_code(Failure(503, 0)) == "http_503"
    assert metrics.error_code("discord_error:500") == "discord_error"
    assert metrics.error_code("channel_deleted") == "channel_deleted"


def test_web_settings() -> None:
    from coach.settings import SettingsError, load_settings

    blank = load_settings(_env_file=None, discord_token="t", web_port="", web_base_url="")
    assert blank.web_port is None and blank.web_base_url is None and blank.web_host == "127.0.0.1"
    on = load_settings(_env_file=None, discord_token="t", web_port="8080", web_base_url="https://b.example.org/")
    assert on.web_port == 8080 and on.web_base_url == "https://b.example.org"
    with pytest.raises(SettingsError, match="WEB_BASE_URL"):
        load_settings(_env_file=None, discord_token="t", web_base_url="b.example.org")
    with pytest.raises(SettingsError, match="WEB_PORT"):
        load_settings(_env_file=None, discord_token="t", web_port="70000")


async def test_board_top_keeps_ties_at_the_cut_and_leaves_out_members_off_the_page(tmp_path) -> None:  # noqa: ANN001
    from datetime import UTC, datetime

    from coach.storage import Storage

    store = await Storage.open(database(tmp_path / "b.sqlite3"))
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    try:
        for user, points in ((1, 9), (2, 7), (3, 7), (4, 7), (5, 2), (6, 4)):
            await store.touch_member(10, user, f"m{user}", now)
            for n in range(points):
                await store.award(10, user, "checkin", 1, f"d{n}", now)
        top, total = await store.board_top(10, 0, 2)
        assert total == 6 and sorted(r.user_id for r in top) == [1, 2, 3, 4]  # 7 points ties three ways
        await store.set_public(10, 1, False)
        top, total = await store.board_top(10, 0, 2)
        assert total == 5 and sorted(r.user_id for r in top) == [2, 3, 4]
        top, total = await store.board_top(10, 0, 25)
        assert total == 5 and len(top) == 5
        assert await store.board_top(11, 0, 25) == ([], 0)
    finally:
        await store.close()


# ----------------------------------------------------------------------------- the page


async def test_page_is_off_until_admins_switch_it_on_and_names_only_who_agreed(harness: Harness) -> None:
    bot = await harness.start(web_port=0)
    s = harness.studio
    community = await build_community(harness)

    handle = await harness.slash(s.admin, "coach web")
    assert "page is off" in await handle.wait_text() and handle.ephemeral
    url = await page_on(harness)
    assert url.startswith(base_url(bot) + "/s/")
    again = await harness.slash(s.admin, "coach web", {"action": "on"})
    assert url in await again.wait_text()  # on twice: the same address

    status, body, headers = await get(url)
    assert status == 200
    assert "Night Owls Studio" in body
    assert "Alice" in body and "Bob" in body
    assert "Night Drive &lt;EP&gt;" in body  # escaped, on the wall
    assert "Secret Sketch" not in body       # Quinn keeps finished projects quiet
    assert "Quinn Quiet" in body             # ... but is on the leaderboard
    assert "<script" not in body.lower() and "&lt;Script&gt;Alert(1)&lt;/Script&gt;&amp;&#34;Mo&#34;" in body
    for snowflake in (s.guild, s.channel, s.admin, s.alice, s.bob, community.mallory, community.quiet):
        assert str(snowflake) not in body    # no Discord ids anywhere
    assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in \
        headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert re.findall(r'(?:src|href)="([^"]+)"', body) and all(
        link.startswith(("/static/", "?period=")) for link in re.findall(r'(?:src|href)="([^"]+)"', body))
    css_status, css, css_headers = await get(base_url(bot) + "/static/page.css")
    assert css_status == 200 and "prefers-color-scheme: dark" in css and css_headers["Content-Type"].startswith("text/css")

    # Tabs are plain links; each shows its own window.
    for period, label in (("week", "This week (since 2 Mar)"), ("month", "March 2026"), ("all", "All time"),
                          ("season", "No season has started here yet")):
        status, body, _ = await get(f"{url}?period={period}")
        assert status == 200 and label in body
        assert re.search(rf'href="\?period={period}" aria-current="page"', body)
    status, body, _ = await get(f"{url}?period=nonsense")
    assert status == 200 and re.search(r'href="\?period=season" aria-current="page"', body)

    # /me public off: gone from every part of the page at once; on again: back.
    handle = await harness.slash(s.alice, "me public", {"switch": "off"})
    assert "off this server's page" in await handle.wait_text() and handle.ephemeral
    status, body, _ = await get(url)
    assert status == 200 and "Alice" not in body and "Night Drive" not in body and "Bob" in body
    handle = await harness.slash(s.alice, "me public", {"switch": "on"})
    await handle.wait_text()
    assert "Alice" in (await get(url))[1]

    # A new link replaces the address; off takes the page down.
    new_url = await page_on(harness, "new-link")
    assert new_url != url
    assert (await get(url))[0] == 404
    assert (await get(new_url))[0] == 200
    handle = await harness.slash(s.admin, "coach web", {"action": "off"})
    assert "page is down" in await handle.wait_text()
    status, body, _ = await get(new_url)
    assert status == 404 and "isn't here" in body
    handle = await harness.slash(s.admin, "coach web", {"action": "off"})
    assert "already off" in await handle.wait_text()
    assert (await get(base_url(bot) + "/s/" + "x" * 30))[0] == 404


async def test_leaderboard_and_streaks_on_the_page_match_the_bot(harness: Harness) -> None:
    await harness.start(web_port=0)
    community = await build_community(harness)
    url = await page_on(harness)
    body = html_lib.unescape((await get(f"{url}?period=all"))[1])
    rows = re.findall(r'<td class="num rank">(\d+)</td><td class="name"><bdi>(.*?)</bdi></td>'
                      r'<td class="num">(\d+)</td><td class="num">(\d+)</td>', body)
    # Alice: 3 check-ins + 5 for the finished track; Bob 3; Quinn 1 + 5; Mallory 2.
    assert [(r[1], int(r[2]), int(r[3])) for r in rows] == [
        ("Alice", 8, 3), ("Quinn Quiet", 6, 0), ("Bob", 3, 3),
        (MALLORY, 2, 2)]
    streaks = re.findall(r'<li><span class="name"><bdi>(.*?)</bdi></span><span class="days">(\d+) days?</span>', body)
    assert streaks == [("Alice", "3"), ("Bob", "3"), (MALLORY, "2")]
    assert "9 check-ins over 3 days; the busiest day had 3" in body
    assert community.quiet


async def test_coach_web_needs_the_web_server_and_manage_server(harness: Harness) -> None:
    await harness.start()  # no WEB_PORT
    assert harness.bot.get_cog("Web").server is None  # type: ignore[union-attr]
    handle = await harness.slash(harness.studio.admin, "coach web", {"action": "on"})
    text = await handle.wait_text()
    assert "WEB_PORT" in text and "Nothing changed" in text and handle.ephemeral
    assert await harness.bot.storage.web_page_token(harness.studio.guild) is None
    with pytest.raises(FakeDiscordError):
        await harness.slash(harness.studio.alice, "coach web", {"action": "on"})


async def test_a_busy_port_leaves_the_bot_running_without_the_web_server(harness: Harness, caplog) -> None:  # noqa: ANN001
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bot = await harness.start(web_port=taken.getsockname()[1])
        assert bot.get_cog("Web").server is None  # type: ignore[union-attr]
    assert "web server could not listen" in caplog.text
    handle = await harness.slash(harness.studio.admin, "coach web", {"action": "on"})
    assert "WEB_PORT" in await handle.wait_text()


async def test_a_new_server_gets_a_friendly_empty_page(harness: Harness) -> None:
    await harness.start(web_port=0)  # no /coach setup, no answers yet
    status, body, _ = await get(await page_on(harness))
    assert status == 200
    assert "No points yet in this period" in body and "No streaks running right now" in body
    assert "Nothing on the wall yet" in body and "0 check-ins over 0 days" in body


async def test_page_of_a_server_that_removed_the_bot_is_gone(harness: Harness) -> None:
    bot = await harness.start(web_port=0)
    await harness.setup_checkin()
    url = await page_on(harness)
    assert (await get(url))[0] == 200
    await harness.fake.remove_guild_live(harness.studio.guild)
    assert await eventually(lambda: bot.get_guild(harness.studio.guild) is None)
    for _ in range(100):  # the removal is recorded by the bot's listener, just after the event
        if (await get(url))[0] == 404:
            break
        await asyncio.sleep(0.02)
    assert (await get(url))[0] == 404


async def test_me_forget_takes_a_member_off_the_page(harness: Harness) -> None:
    bot = await harness.start(web_port=0)
    await build_community(harness, days=1)
    url = await page_on(harness)
    assert "Bob" in (await get(url))[1]
    handle = await harness.slash(harness.studio.bob, "me forget")
    await handle.wait_text()
    click = await harness.fake.click(handle.original or handle.message, next(
        c["custom_id"] for row in (handle.response_data or {}).get("components", []) for c in row["components"]
        if c["custom_id"].endswith(":y")), harness.studio.bob)
    await click.response()
    web(bot).server.forget(harness.studio.guild)  # the page cache (30 s) is not what this test is about
    assert "Bob" not in (await get(url))[1]
    storage, guild = bot.storage, harness.studio.guild
    assert await storage.checkins_per_day(guild, "2026-01-01") == \
        await storage.checkins_per_day_from_checkins(guild, "2026-01-01") == {"2026-03-02": 3}


async def test_heatmap_counts_follow_answers_edits_and_the_purge(harness: Harness) -> None:
    bot = await harness.start()
    await build_community(harness, days=2)
    storage, guild = bot.storage, harness.studio.guild
    counts = await storage.checkins_per_day(guild, "2026-01-01")
    assert counts == await storage.checkins_per_day_from_checkins(guild, "2026-01-01") == \
        {"2026-03-02": 4, "2026-03-03": 3}
    handle = await harness.slash(harness.studio.bob, "checkin", {"status": "skipped"})  # an edit: no new answer
    await handle.wait_text()
    assert await storage.checkins_per_day(guild, "2026-01-01") == counts
    await storage.mark_removed(guild, harness.clock.now())
    assert await storage.purge_guild(guild, to_unix(harness.clock.now())) is not None
    assert await storage.checkins_per_day(guild, "2026-01-01") == {}
    assert await storage.fetchone("SELECT COUNT(*) FROM checkin_days WHERE guild_id = ?", (guild,)) == (0,)


# ----------------------------------------------------------------------------- health


@sqlite_only
async def test_healthz_turns_503_when_the_database_is_gone_and_200_after(harness: Harness) -> None:
    bot = await harness.start(web_port=0)
    health = base_url(bot) + "/healthz"
    await harness.tick()
    status, body, _ = await get(health)
    assert status == 200, body
    assert '"status": "ok"' in body and '"database": "ok"' in body and '"0": "connected"' in body

    moved = harness.db_path.with_name("elsewhere.sqlite3")
    harness.db_path.rename(moved)
    try:
        for _ in range(2):  # within two ticks
            await harness.tick()
        status, body, _ = await get(health)
        assert status == 503 and "database:" in body and "gone" in body
    finally:
        moved.rename(harness.db_path)
    await harness.tick()
    status, body, _ = await get(health)
    assert status == 200, body


async def test_healthz_turns_503_when_the_gateway_drops_and_200_after_it_resumes(harness: Harness) -> None:
    bot = await harness.start(web_port=0)
    health = base_url(bot) + "/healthz"
    await harness.tick()
    assert (await get(health))[0] == 200
    harness.fake.hold_gateway()
    await harness.fake.drop_connection(wait=False)
    for _ in range(50):  # the first tick after discord.py notices the drop already sees it
        await harness.tick()
        status, body, _ = await get(health)
        if status == 503:
            break
        await asyncio.sleep(0.1)
    assert status == 503 and "gateway: shard 0 is disconnected" in body
    harness.fake.release_gateway()
    await harness.fake.wait_resumed()
    await harness.tick()
    status, body, _ = await get(health)
    assert status == 200, body


async def test_healthz_turns_503_when_the_scheduler_stops_ticking(harness: Harness) -> None:
    bot = await harness.start(web_port=0, tick_seconds=1)
    health = base_url(bot) + "/healthz"
    await harness.tick()
    assert (await get(health))[0] == 200
    await asyncio.sleep(2.1)  # more than two ticks without a pass
    status, body, _ = await get(health)
    assert status == 503 and "scheduler: last pass" in body
    await harness.tick()
    assert (await get(health))[0] == 200


# ----------------------------------------------------------------------------- metrics


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from the exposition text (0 when absent)."""
    for line in text.splitlines():
        found = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if found and found.group(1) == name and dict(re.findall(r'(\w+)="([^"]*)"', found.group(2) or "")) == labels:
            return float(found.group(3))
    return 0.0


async def test_metrics_count_posts_answers_failures_and_interaction_latency(harness: Harness) -> None:
    bot = await harness.start(web_port=0)
    url = base_url(bot) + "/metrics"
    status, before, headers = await get(url)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    await build_community(harness, days=2)
    channel = harness.studio.channel
    assert await eventually(lambda: any("Night Drive" in (m.get("content") or "") + str(m.get("embeds"))
                                        for m in harness.fake.messages[channel]))  # the celebration is out
    harness.fake.inject_fault("POST", "/channels/{channel_id}/messages", status=403, code=50013, times=1)
    harness.clock.set(harness.clock.now() + timedelta(days=1))
    await harness.tick()  # this round's post is refused: missing permission
    status, after, _ = await get(url)
    assert status == 200
    assert sample(after, "bounce_posts_sent_total", kind="round") - sample(before, "bounce_posts_sent_total",
                                                                           kind="round") == 2
    assert sample(after, "bounce_posts_sent_total", kind="celebration") - sample(
        before, "bounce_posts_sent_total", kind="celebration") == 1
    assert sample(after, "bounce_posts_failed_total", kind="round", code="50013") - sample(
        before, "bounce_posts_failed_total", kind="round", code="50013") == 1
    assert sample(after, "bounce_answers_total", path="command") - sample(
        before, "bounce_answers_total", path="command") == 7
    answered = sample(after, "bounce_interaction_answer_seconds_count") - sample(
        before, "bounce_interaction_answer_seconds_count")
    assert answered >= 7 + 4 + 1  # /checkin ×7, project start/finish ×4, /me announce, /coach setup...
    assert sample(after, "bounce_interaction_answer_seconds_bucket", le="3.0") == sample(
        after, "bounce_interaction_answer_seconds_count")  # every answer within Discord's 3 s
    assert sample(after, "bounce_servers") == 1
    assert sample(after, "bounce_gateway_connected", shard="0") == 1
    assert "bounce_gateway_latency_seconds" in after
    assert sample(after, "bounce_send_queue_length") >= 0 and "bounce_send_queue_length " in after
    assert sample(after, "bounce_scheduler_lag_seconds") == 0
    assert 0 <= sample(after, "bounce_scheduler_last_tick_age_seconds") < 60
    assert "process_resident_memory_bytes" in after


async def test_dms_closed_are_counted(harness: Harness) -> None:
    bot = await harness.start(web_port=0)
    await harness.setup_checkin()
    await (await harness.slash(harness.studio.admin, "coach post-now")).wait_text()  # a DM delivers the open round
    handle = await harness.slash(harness.studio.alice, "me dm", {"switch": "on", "time": "21:00",
                                                                 "timezone": "Europe/Berlin"})
    await handle.wait_text()
    harness.fake.close_dms(harness.studio.alice)
    before = (await get(base_url(bot) + "/metrics"))[1]
    harness.clock.set(harness.clock.now().replace(hour=20, minute=0, second=5))  # 21:00 in Berlin
    await harness.tick()
    after = (await get(base_url(bot) + "/metrics"))[1]
    assert sample(after, "bounce_dms_switched_off_total") - sample(before, "bounce_dms_switched_off_total") == 1
    assert sample(after, "bounce_posts_failed_total", kind="dm", code="50007") - sample(
        before, "bounce_posts_failed_total", kind="dm", code="50007") == 1
