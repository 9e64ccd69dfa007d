"""Posting the daily round: how its message looks (the embed, the tally line, the three answer buttons) and how
it reaches the channel (the outbox lane's take, deliver and find; /coach post-now's round for today).
Answering it, and keeping its tally current, is cogs/rounds.py."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import discord

from coach import rounds, voice
from coach.checkins import STATUS_LABELS
from coach.clock import from_unix
from coach.dm import day_label
from coach.outbox import Job, Sent, Skip, TakeReport
from coach.rounds import nonce_for
from coach.storage import GuildSettings, Round
from coach.text import safe_name, ts
from cogs.common import NO_PINGS, bot_of, guarded, stateless
from cogs.delivery import find_in_history, has_custom_id_prefix, postable_channel

if TYPE_CHECKING:
    from bot import BounceBot
    from cogs.rounds import Rounds

IN_FLIGHT = 16
CODES = {"f": "finished", "u": "unfinished", "s": "skipped"}
CODE_OF = {v: k for k, v in CODES.items()}
STYLES = {"finished": discord.ButtonStyle.success, "unfinished": discord.ButtonStyle.primary,
          "skipped": discord.ButtonStyle.secondary}
EMOJI = {"finished": "✅", "unfinished": "🔸", "skipped": "⏸️"}
FOOTER = ("Finished means you did the piece of work you planned for today; a whole project is finished with "
          "/project finish. Answering again edits your answer.")


def round_embed(round_: Round, prompt: str, counts: dict[str, int], tz: str) -> discord.Embed:
    description = prompt
    if round_.late:
        description += f"\n\n_Posted late: I was offline when this was due ({ts(from_unix(round_.scheduled_at), 't')})._"
    embed = discord.Embed(title=f"Accountability Check · {day_label(round_.local_date)}",
                          description=description, colour=discord.Colour.from_rgb(46, 204, 113))
    embed.add_field(name="So far", value=tally_line(counts), inline=False)
    embed.set_footer(text=FOOTER)
    return embed


def tally_line(counts: dict[str, int]) -> str:
    return " · ".join(f"{EMOJI[s]} {STATUS_LABELS[s]} **{counts.get(s, 0)}**" for s in STATUS_LABELS)


def status_button(prefix: str, status: str, *, label: str | None = None,
                  style: discord.ButtonStyle | None = None) -> discord.ui.Button:
    """A Finished / Unfinished / Skipped button whose custom_id is `<prefix>:<f|u|s>`."""
    return discord.ui.Button(label=label or STATUS_LABELS[status], style=style or STYLES[status],
                             emoji=EMOJI[status], custom_id=f"{prefix}:{CODE_OF[status]}")


class AnswerButton(discord.ui.DynamicItem[discord.ui.Button], template=r"bounce:a:(?P<round>\d+):(?P<code>[fus])"):
    """Finished / Unfinished / Skipped on a round message. The custom_id carries all it needs; a press opens
    the answer form of the Rounds cog (cogs/rounds.py)."""

    def __init__(self, round_id: int, status: str) -> None:
        super().__init__(status_button(f"bounce:a:{round_id}", status))
        self.round_id = round_id
        self.status = status

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any):  # noqa: ANN206
        return cls(int(match["round"]), CODES[match["code"]])

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        cog: Rounds = bot_of(interaction).get_cog("Rounds")  # type: ignore[assignment]
        await cog.open_form(interaction, self.round_id, self.status)


def round_view(round_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for status in STATUS_LABELS:
        view.add_item(AnswerButton(round_id, status))
    return view


class RoundPoster:
    """The outbox's "round" kind: takes due rounds, posts each once, finds an earlier attempt's post."""

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    def register(self) -> None:
        self.bot.outbox.register("round", self.deliver, take=self.take, find=self.find, in_flight=IN_FLIGHT)

    async def take(self, now: datetime) -> TakeReport:
        return await rounds.take_due(self.storage, now, self.bot.grace)

    async def deliver(self, job: Job) -> Sent:
        round_ = await self.storage.get_round(job.ref_id)
        guild = await self.storage.get_guild(job.guild_id)
        if round_ is None or guild is None:
            raise Skip("gone")  # the server's data was deleted meanwhile
        channel = postable_channel(self.bot, round_.guild_id, round_.channel_id)
        if round_.prompt_index is None:
            index = await voice.choose_prompt(self.storage, self.bot.prompts, guild.guild_id, self.bot.rng)
            round_ = await self.storage.set_round_prompt(round_.id, index)
        server = getattr(getattr(channel, "guild", None), "name", "") or "your server"
        embed = round_embed(round_, self.prompt_text(round_, server), {}, guild.timezone)
        content, mentions = None, NO_PINGS
        if guild.role_id:
            content = f"<@&{guild.role_id}>"
            mentions = discord.AllowedMentions(everyone=False, users=False, roles=[discord.Object(guild.role_id)])
        message = await channel.send(content=content, embed=embed, view=stateless(round_view(round_.id)),
                                     allowed_mentions=mentions, nonce=nonce_for("round", round_.id))
        return Sent(message.id, message.channel.id)

    async def find(self, job: Job) -> Sent | None:
        """Past Discord's nonce window: did an earlier attempt post this round? (Its buttons carry the id.)"""
        assert self.bot.user is not None and job.first_try_at is not None
        channel = postable_channel(self.bot, job.guild_id, (await self.storage.get_round(job.ref_id)).channel_id)
        return await find_in_history(channel, self.bot.user.id, from_unix(job.first_try_at),
                                     lambda m: has_custom_id_prefix(m, f"bounce:a:{job.ref_id}:"))

    def prompt_text(self, round_: Round, guild_name: str) -> str:
        return self.bot.prompts.checkin_text(round_.prompt_index or 0, server=safe_name(guild_name, 60))

    async def post_today(self, guild: GuildSettings) -> str:
        """/coach post-now: today's round if there is none yet. Never shifts the schedule."""
        now = self.bot.clock.now()
        today = now.astimezone(ZoneInfo(guild.timezone)).date()
        existing = await self.storage.round_on(guild.guild_id, today.isoformat())
        job_id = None
        if existing is None:
            job_id = await self.storage.take_manual_round(rounds.manual_take(guild, today, now, self.bot.grace), now)
            existing = await self.storage.round_on(guild.guild_id, today.isoformat())
        if job_id is None and existing is not None:
            if existing.state == "posted" and existing.message_id:
                link = f"https://discord.com/channels/{guild.guild_id}/{existing.channel_id}/{existing.message_id}"
                return f"Today's round is already up: {link}. There's only ever one per day."
            if existing.state == "claimed":
                return "Today's round is on its way to the channel right now. There's only ever one per day."
            return ("Today's round was already attempted and couldn't be posted "
                    f"({existing.error or 'unknown problem'}); fix that and it'll run at the next scheduled time.")
        assert job_id is not None
        state, reason = await self.bot.outbox.run_now(job_id)
        self.bot.outbox.wake()  # e.g. the weekly recap queued with it
        if state != "done":
            from cogs.admin import error_sentence

            if state == "pending":
                return ("Discord didn't answer just now; I'll keep trying to post today's round in "
                        f"<#{guild.channel_id}> for the next few hours.")
            return "I couldn't post it. " + error_sentence(reason or "discord_error", guild.channel_id)
        return f"Posted today's round in <#{guild.channel_id}>. The regular schedule carries on as before."
