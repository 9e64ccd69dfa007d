"""Answering the daily round: its buttons' form, /checkin, and the tally that keeps the posted round current.
Posting the round (its message, the outbox lane, /coach post-now) is cogs/round_posts.py."""

from __future__ import annotations

import asyncio
import logging
import re
import time as _time
from collections import OrderedDict
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from coach import checkins
from coach.checkins import STATUS_LABELS
from coach.dm import day_label
from coach.errors import Conflict, NotFound
from coach.rounds import next_due_for
from coach.storage import GuildSettings, Round
from coach.text import MODAL_TITLE_MAX, NOTE_MAX, PROJECT_NAME_MAX, cut, safe_title, ts
from cogs.common import Repeats, guarded, member_name, orphaned_form, reply
from cogs.round_posts import CODE_OF, CODES, AnswerButton, RoundPoster, round_embed

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.rounds")
TALLY_MEMORY = 1024  # rounds whose last tally edit time is remembered
TALLY_DELAY = 3.0
MODAL_ID = re.compile(r"bounce:m:(?P<round>\d+):(?P<code>[fus]):\d+")


class AnswerForm(discord.ui.Modal):
    """The short form behind each button: project and a note."""

    def __init__(self, cog: Rounds, round_id: int, status: str, project: str | None, user_id: int) -> None:
        # The custom_id names the member too: two members' open forms must never share one.
        super().__init__(title=cut(f"{STATUS_LABELS[status]}: how did it go?", MODAL_TITLE_MAX),
                         custom_id=f"bounce:m:{round_id}:{CODE_OF[status]}:{user_id}", timeout=900)
        self.cog, self.round_id, self.status = cog, round_id, status
        self.project = discord.ui.TextInput(label="Project (optional)", required=False, max_length=PROJECT_NAME_MAX,
                                            default=project, placeholder="e.g. Night Drive EP", custom_id="project")
        self.note = discord.ui.TextInput(
            label="What got in the way / next step (optional)", style=discord.TextStyle.paragraph, custom_id="note",
            required=False, max_length=NOTE_MAX, placeholder="One line is plenty.",
        )
        self.add_item(self.project)
        self.add_item(self.note)

    @guarded
    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.record(interaction, self.round_id, self.status, self.project.value, self.note.value, "button")

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:
        from cogs.common import report_error

        await report_error(interaction, error)


class Rounds(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self.tally_delay = TALLY_DELAY
        self._tally_pending: dict[int, asyncio.Task[None]] = {}
        self._tally_tasks: set[asyncio.Task[None]] = set()
        self._tally_last: OrderedDict[int, float] = OrderedDict()  # bounded: the newest TALLY_MEMORY rounds
        self.repeats = Repeats()
        self.poster = RoundPoster(bot)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(AnswerButton)
        self.poster.register()

    async def cog_unload(self) -> None:
        for task in list(self._tally_tasks):
            task.cancel()

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    async def post_today(self, guild: GuildSettings) -> str:
        """/coach post-now (cogs/admin.py): today's round if there is none yet."""
        return await self.poster.post_today(guild)

    # ------------------------------------------------------------------ answering

    async def open_form(self, interaction: discord.Interaction, round_id: int, status: str) -> None:
        round_ = await self.storage.get_round(round_id)
        if round_ is None or interaction.guild_id is None or round_.guild_id != interaction.guild_id:
            raise NotFound("I can't find that check-in any more.")
        latest = await self.storage.latest_round(round_.guild_id)
        if latest and latest.local_date > round_.local_date:
            raise Conflict("That check-in has closed: a newer one is open now. Answer today's round instead; "
                           "nothing was logged for the old one.")
        project = await self.storage.latest_active_project(round_.guild_id, interaction.user.id)
        await interaction.response.send_modal(AnswerForm(self, round_id, status, project.name if project else None,
                                                         interaction.user.id))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A form opened before a restart has no live Modal object any more: answer its submit here."""
        found = orphaned_form(interaction, MODAL_ID)
        if found is None:
            return
        match, values = found
        await guarded(self.record)(interaction, int(match["round"]), CODES[match["code"]], values.get("project"),
                                   values.get("note"), "button")

    async def record(self, interaction: discord.Interaction, round_id: int, status: str, project: str | None,
                     note: str | None, via: str) -> None:
        round_ = await self.storage.get_round(round_id)
        if round_ is None or round_.guild_id != interaction.guild_id:
            raise NotFound("I can't find that check-in any more.")
        await self._answer(interaction, round_, status, project, note, via)

    async def _answer(self, interaction: discord.Interaction, round_: Round, status: str, project: str | None,
                      note: str | None, via: str) -> None:
        """Log the answer and say so; the same answer submitted twice at once is logged once, answered alike."""
        key = ("answer", round_.id, interaction.user.id, status, project, note)
        text = await self.repeats.once(key, lambda: self._log(interaction, round_, status, project, note, via))
        await reply(interaction, text)

    async def _log(self, interaction: discord.Interaction, round_: Round, status: str, project: str | None,
                   note: str | None, via: str) -> str:
        latest = await self.storage.latest_round(round_.guild_id)
        guild_name = interaction.guild.name if interaction.guild else "the server"
        outcome = await checkins.answer(
            self.storage, self.bot.prompts, self.bot.rng, round_=round_, latest=latest,
            guild_id=round_.guild_id, user_id=interaction.user.id, member_name=member_name(interaction.user),
            server_name=guild_name, status=status, project_name=project, note=note, via=via,
            now=self.bot.clock.now(),
        )
        lines = [f"Logged {checkins.describe(outcome.checkin, outcome.project)} for "
                 f"{day_label(round_.local_date)}."
                 + (" (+1 point)" if outcome.created else " Your earlier answer was updated; no extra points.")]
        if outcome.project_created and outcome.project:
            lines.append(f"New project started: **{safe_title(outcome.project.name)}**.")
        lines.append(outcome.reply)
        if outcome.freeze_note:
            lines.append(outcome.freeze_note)
        self.touch_tally(round_)
        return "\n".join(lines)

    @app_commands.command(name="checkin", description="Answer today's Accountability Check without the buttons.")
    @app_commands.describe(status="How did it go?", project="Which project (optional)",
                           note="What got in the way / your next step (optional)")
    @app_commands.choices(status=[app_commands.Choice(name=STATUS_LABELS[s], value=s) for s in STATUS_LABELS])
    @app_commands.guild_only()
    async def checkin(self, interaction: discord.Interaction, status: app_commands.Choice[str],
                      project: str | None = None, note: str | None = None) -> None:
        assert interaction.guild_id is not None
        round_ = await self.storage.latest_round(interaction.guild_id)
        if round_ is None:
            guild = await self.storage.get_guild(interaction.guild_id)
            if guild is None or guild.paused:
                raise NotFound("There's no check-in running here yet. An admin can start one with `/coach setup`.")
            nxt = next_due_for(guild.time_local, guild.timezone, guild.days, self.bot.clock.now())
            raise NotFound(f"No check-in is open yet. The first one arrives {ts(nxt)} ({ts(nxt, 'R')}).")
        await self._answer(interaction, round_, status.value, project, note, "command")

    @checkin.autocomplete("project")
    async def _project_ac(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await project_choices(self.bot, interaction, current)

    # ------------------------------------------------------------------ tally

    def touch_tally(self, round_: Round) -> None:
        """Edit the round's tally at most once every few seconds, however many answers arrive."""
        if round_.message_id is None or round_.id in self._tally_pending:
            return
        wait = max(0.0, self._tally_last.get(round_.id, 0.0) + self.tally_delay - _time.monotonic())
        task = asyncio.create_task(self._flush_tally(round_, max(wait, min(self.tally_delay, 0.5))))
        self._tally_pending[round_.id] = task
        self._tally_tasks.add(task)
        task.add_done_callback(self._tally_tasks.discard)

    async def _flush_tally(self, round_: Round, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            self._tally_last[round_.id] = _time.monotonic()
            self._tally_last.move_to_end(round_.id)
            while len(self._tally_last) > TALLY_MEMORY:
                self._tally_last.popitem(last=False)
            del self._tally_pending[round_.id]
            counts = await self.storage.tally(round_.id)
            guild = await self.storage.get_guild(round_.guild_id)
            channel = self.bot.guild_channel(round_.guild_id, round_.channel_id)
            if guild is None or not isinstance(channel, discord.abc.Messageable) or round_.message_id is None:
                return
            server = getattr(getattr(channel, "guild", None), "name", "") or "your server"
            embed = round_embed(round_, self.poster.prompt_text(round_, server), counts, guild.timezone)
            await channel.get_partial_message(round_.message_id).edit(embed=embed)  # type: ignore[union-attr]
        except discord.HTTPException as exc:
            log.warning("could not update the tally of round %s: %s", round_.id, exc)
        except Exception:
            log.exception("tally update failed for round %s", round_.id)


async def project_choices(bot: BounceBot, interaction: discord.Interaction, current: str
                          ) -> list[app_commands.Choice[str]]:
    if interaction.guild_id is None:
        return []
    names = await bot.storage.search_active_projects(interaction.guild_id, interaction.user.id, current or "", 25)
    return [app_commands.Choice(name=cut(n, 100), value=n[:100]) for n in names]


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Rounds(bot))
