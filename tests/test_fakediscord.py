"""The loopback Discord, proven against a minimal real discord.py Bot."""

from __future__ import annotations

import asyncio

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.http import Route

from tests.fakediscord import FakeDiscord, FakeDiscordError, message_text, overwrite
from tests.fakediscord.contract import DEFAULT_SPEC, load_contract
from tests.fakediscord.fixtures import fake_discord, run_client, stop_client  # noqa: F401 - fixture
from tests.fakediscord.world import SEND_MESSAGES, VIEW_CHANNEL


class CheckinView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.clicked: asyncio.Queue[int] = asyncio.Queue()

    @discord.ui.button(label="Finished", style=discord.ButtonStyle.success, custom_id="checkin:finished")
    async def finished(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_message("Finished! +1 point", ephemeral=True)
        self.clicked.put_nowait(interaction.user.id)

    @discord.ui.button(label="Note", style=discord.ButtonStyle.secondary, custom_id="checkin:note")
    async def note(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_modal(NoteModal())


class NoteModal(discord.ui.Modal, title="What got in the way?"):
    blocker = discord.ui.TextInput(label="Blocker", custom_id="note:blocker", max_length=200)
    next_step = discord.ui.TextInput(label="Next step", custom_id="note:next", required=False)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            f"Noted: {self.blocker.value} / next: {self.next_step.value or '-'}", ephemeral=True
        )


class Bot(commands.Bot):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
        self.view = CheckinView()
        self.channel_updates: list[int] = []

        @app_commands.command(name="setup", description="Choose the check-in channel")
        @app_commands.describe(channel="Where check-ins are posted", timezone="IANA time zone")
        async def setup(interaction: discord.Interaction, channel: discord.TextChannel, timezone: str) -> None:
            await interaction.response.send_message(
                f"Check-ins go to {channel.mention} ({channel.name}) at {timezone}", ephemeral=True
            )

        @setup.autocomplete("timezone")
        async def tz_complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            zones = ["Europe/Berlin", "Europe/London", "America/New_York"]
            return [app_commands.Choice(name=z, value=z) for z in zones if current.lower() in z.lower()]

        group = app_commands.Group(name="coach", description="Coach settings")

        @group.command(name="show", description="Show settings (deferred)")
        async def show(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send(embed=discord.Embed(title="Settings", description="daily at 20:00"))

        @app_commands.command(name="slow", description="Answers too late")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.3)
            await interaction.response.send_message("too late")

        self.tree.add_command(setup)
        self.tree.add_command(group)
        self.tree.add_command(slow)

    async def setup_hook(self) -> None:
        self.add_view(self.view)

    async def on_guild_channel_update(self, before: discord.abc.GuildChannel, after: discord.abc.GuildChannel) -> None:
        self.channel_updates.append(after.id)


@pytest.fixture
async def world(fake_discord: FakeDiscord) -> dict:  # noqa: F811 - fixture
    fake = fake_discord
    gid = fake.add_guild("Studio")
    cid = fake.add_channel(gid, "check-ins")
    uid = fake.add_member(gid, "producer")
    return {"fake": fake, "gid": gid, "cid": cid, "uid": uid}


@pytest.fixture
async def bot(world: dict):
    b = Bot()
    task = await run_client(world["fake"], b)
    await b.tree.sync()
    yield b
    await stop_client(b, task)


async def test_login_ready_and_guild_create(world: dict, bot: Bot) -> None:
    fake, gid, cid = world["fake"], world["gid"], world["cid"]
    guild = bot.get_guild(gid)
    assert guild is not None and guild.name == "Studio"
    assert [c.id for c in guild.text_channels] == [cid]
    assert {r.name for r in guild.roles} >= {"@everyone", "Bounce"}
    assert guild.me is not None and guild.me.id == fake.bot_user_id
    assert bot.user.id == fake.bot_user_id and bot.application_id == fake.application_id
    assert guild.get_channel(cid).permissions_for(guild.me).send_messages
    assert fake.identify_count == 1 and fake.intents == bot.intents.value
    assert fake.tokens_seen == {fake.token}
    # content type must be exactly application/json for discord.py to parse bodies as JSON
    me = await bot.http.request(Route("GET", "/users/@me"))
    assert isinstance(me, dict) and me["id"] == str(fake.bot_user_id)


async def test_sync_slash_autocomplete_and_deferred_followup(world: dict, bot: Bot) -> None:
    fake, gid, cid, uid = world["fake"], world["gid"], world["cid"], world["uid"]
    assert sorted(c["name"] for c in fake.commands[None]) == ["coach", "setup", "slow"]

    h = await fake.slash(gid, cid, uid, "setup", {"channel": cid, "timezone": "Europe/Berlin"})
    assert (await h.response())["type"] == 4
    text = await h.wait_text()
    assert f"<#{cid}>" in text and "check-ins" in text and "Europe/Berlin" in text
    assert h.ephemeral

    ac = await fake.autocomplete(gid, cid, uid, "setup", {"timezone": "europe"}, focused="timezone")
    await ac.response()
    assert [c["value"] for c in ac.choices] == ["Europe/Berlin", "Europe/London"]

    deferred = await fake.slash(gid, cid, uid, "coach show")
    assert "daily at 20:00" in await deferred.wait_text()
    assert deferred.deferred and deferred.ephemeral
    assert deferred.original is deferred.followups[0]  # first followup edits the loading message

    with pytest.raises(FakeDiscordError, match="not registered"):
        await fake.slash(gid, cid, uid, "nope")
    with pytest.raises(FakeDiscordError, match="missing required"):
        await fake.slash(gid, cid, uid, "setup", {"timezone": "UTC"})


async def test_persistent_button_and_modal(world: dict, bot: Bot) -> None:
    fake, cid, uid = world["fake"], world["cid"], world["uid"]
    channel = bot.get_channel(cid)
    sent = await channel.send("Accountability Check: did you finish?", view=bot.view,
                              allowed_mentions=discord.AllowedMentions.none())
    posted = fake.messages[cid][-1]
    assert posted["id"] == str(sent.id) and posted["_allowed_mentions"] == {"parse": []}

    click = await fake.click(posted, "checkin:finished", uid)
    assert "Finished" in await click.wait_text() and click.ephemeral
    assert await asyncio.wait_for(bot.view.clicked.get(), 2) == uid

    opener = await fake.click(posted, "checkin:note", uid)
    assert (await opener.response())["type"] == 9
    assert opener.modal["custom_id"]
    sub = await fake.submit_modal(opener.modal["custom_id"], {"note:blocker": "mixing took ages"}, uid)
    assert "mixing took ages" in await sub.wait_text()
    assert sub.payload["message"]["id"] == posted["id"]


async def test_rate_limit_and_server_error_are_retried(world: dict, bot: Bot) -> None:
    fake, cid = world["fake"], world["cid"]
    channel = bot.get_channel(cid)
    fake.inject_fault("POST", "/channels/{channel_id}/messages", status=429, retry_after=0.2)
    await channel.send("after a 429")
    fake.inject_fault("POST", f"/channels/{cid}/messages", status=500)
    await channel.send("after a 500")
    assert [m["content"] for m in fake.messages[cid]] == ["after a 429", "after a 500"]
    statuses = [r.status for r in fake.requests_to("/channels/{channel_id}/messages", "POST")]
    assert statuses == [429, 200, 500, 200]


async def test_forbidden_and_closed_dms(world: dict, bot: Bot) -> None:
    fake, gid, cid, uid = world["fake"], world["gid"], world["cid"], world["uid"]
    fake.inject_fault("POST", "/channels/{channel_id}/messages", status=403, code=50013)
    with pytest.raises(discord.Forbidden) as exc:
        await bot.get_channel(cid).send("nope")
    assert exc.value.code == 50013

    # real permission maths: deny SEND_MESSAGES to the bot's role via an overwrite
    fake.set_overwrites(cid, [overwrite(fake.bot_role_id(gid), deny=SEND_MESSAGES)])
    await fake.sync()
    assert bot.channel_updates == [cid]
    assert not bot.get_channel(cid).permissions_for(bot.get_guild(gid).me).send_messages
    with pytest.raises(discord.Forbidden):
        await bot.get_channel(cid).send("still nope")

    fake.close_dms(uid)
    user = await bot.fetch_user(uid)
    with pytest.raises(discord.Forbidden) as exc:
        await user.send("hello")
    assert exc.value.code == 50007
    assert fake.invalid_requests == 3


async def test_reconnect_and_drop_resume(world: dict, bot: Bot) -> None:
    fake, gid, cid, uid = world["fake"], world["gid"], world["cid"], world["uid"]
    await fake.send_reconnect()
    assert fake.resume_count == 1 and fake.identify_count == 1
    h = await fake.slash(gid, cid, uid, "setup", {"channel": cid, "timezone": "UTC"})
    assert "UTC" in await h.wait_text()

    # events sent while disconnected are replayed on RESUME
    await fake.drop_connection(wait=False)
    fake.set_overwrites(cid, [overwrite(gid, deny=VIEW_CHANNEL)])
    await fake.wait_resumed()
    await fake.sync()
    assert fake.resume_count == 2 and fake.identify_count == 1
    assert bot.channel_updates == [cid]


async def test_contract_violation_is_reported(world: dict, bot: Bot) -> None:
    fake, cid = world["fake"], world["cid"]
    route = Route("POST", "/channels/{channel_id}/messages", channel_id=cid)
    with pytest.raises(discord.HTTPException) as exc:
        await bot.http.request(route, json={"content": 123})
    assert exc.value.status == 400 and exc.value.code == 50035
    with pytest.raises(discord.HTTPException):
        await bot.get_channel(cid).send("x" * 2001)
    assert fake.take_violations() == [
        "POST /channels/{channel_id}/messages: content: 123 is not of type ['string', 'null']",
        "POST /channels/{channel_id}/messages: content: must be at most 2000 characters long (got 2001)",
    ]
    assert fake.messages[cid] == []


async def test_live_guild_dm_and_unknown_route(world: dict, bot: Bot) -> None:
    fake, uid = world["fake"], world["uid"]
    gid2 = await fake.add_guild_live("Second Studio")
    assert bot.get_guild(gid2) is not None
    await fake.remove_guild_live(gid2)
    assert bot.get_guild(gid2) is None

    user = await bot.fetch_user(uid)
    sent = await user.send("Your check-in is open", file=discord.File(__file__, filename="notes.txt"))
    dm = fake.dm_channel(uid)
    msg = fake.messages[int(dm["id"])][0]
    assert msg["attachments"][0]["filename"] == "notes.txt" and msg["_files"]["notes.txt"].startswith(b'"""')
    assert await sent.attachments[0].read() == msg["_files"]["notes.txt"]
    assert message_text(msg) == "Your check-in is open"

    with pytest.raises(discord.NotFound):
        await bot.http.request(Route("GET", "/invites/{code}", code="abc"))
    assert fake.take_violations() == ["GET /invites/abc: unimplemented route (fake discord answers 404)"]


async def test_interaction_deadline_is_enforced(world: dict, bot: Bot) -> None:
    fake, gid, cid, uid = world["fake"], world["gid"], world["cid"], world["uid"]
    fake.interaction_deadline = 0.1  # Discord's is 3 s; shortened to keep the test fast
    h = await fake.slash(gid, cid, uid, "slow")
    for _ in range(100):
        if fake.requests_to("/interactions/{interaction_id}/{interaction_token}/callback"):
            break
        await asyncio.sleep(0.01)
    assert h.response_body is None
    assert fake.requests_to("/interactions/{interaction_id}/{interaction_token}/callback")[0].status == 404
    [line] = fake.take_violations()
    assert "deadline" in line


async def test_global_rate_limit() -> None:
    fake = FakeDiscord(spec_path=None, global_rate_limit=5)
    await fake.start()
    gid = fake.add_guild()
    cid = fake.add_channel(gid)
    b = Bot()
    task = await run_client(fake, b)
    try:
        channel = b.get_channel(cid)
        await asyncio.gather(*(channel.send(f"m{i}") for i in range(8)))
        assert len(fake.messages[cid]) == 8 and fake.global_429s >= 1
        assert fake.contract is None
    finally:
        await stop_client(b, task)
        await fake.stop()


def test_spec_loaded_once_and_branch_errors_are_readable() -> None:
    contract = load_contract(DEFAULT_SPEC)
    if contract is None:
        pytest.skip(f"OpenAPI spec not found at {DEFAULT_SPEC}")
    assert load_contract(DEFAULT_SPEC) is contract
    problems = contract.validate(
        "POST", "/channels/{channel_id}/messages",
        {"components": [{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "a", "label": "x" * 81}]}],
         "message_reference": {"message_id": 123}},
    )
    assert problems == [("components.0.components.0.label", "must be at most 80 characters long (got 81)")]
