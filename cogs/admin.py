"""/coach: the admin's side. Parse the interaction, call coach/, answer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import discord
from discord import app_commands
from discord.ext import commands

from coach.clock import from_unix, to_unix
from coach.errors import BadInput, NotFound
from coach.rounds import next_due_for
from coach.schedule import (
    WEEKDAY_LONG,
    format_days,
    format_time,
    next_occurrence,
    parse_days,
    parse_time,
    parse_timezone,
    search_timezones,
)
from coach.storage import GuildSettings
from coach.text import cut, ts
from cogs.common import reply

if TYPE_CHECKING:
    from bot import BounceBot

REQUIRED = ("view_channel", "send_messages", "embed_links", "read_message_history")
PERMISSION_NAMES = {"view_channel": "View Channel", "send_messages": "Send Messages", "embed_links": "Embed Links",
                    "read_message_history": "Read Message History"}
ERROR_TEXT = {
    "missing_permission": "I couldn't post in <#{channel}>: I'm missing permission there. Give me View Channel, "
                          "Send Messages, Embed Links and Read Message History in that channel, or pick another "
                          "with `/coach setup`.",
    "missing_access": "I couldn't post in <#{channel}>: I can't see that channel. Give me View Channel there, or "
                      "pick another with `/coach setup`.",
    "gave_up": "Discord or the server was unreachable for the whole time the round could still go out, so "
               "<#{channel}> didn't get it. Nothing to fix on your side; the next one comes as scheduled.",
    "broken_schedule": "I couldn't work out the schedule any more (its time zone may have been retired), so "
                       "scheduled posts are paused. Run `/coach setup` again to pick a time zone.",
    "channel_deleted": "The check-in channel <#{channel}> is gone. Pick a new one with `/coach setup`.",
    "discord_error": "Discord had trouble when I posted in <#{channel}>; I'll try again at the next round.",
}
DAY_SUGGESTIONS = ["every day", "weekdays", "weekends", "mon,wed,fri", "tue,thu", "sat,sun"]


def missing_permissions(channel: discord.abc.GuildChannel, me: discord.Member) -> list[str]:
    perms = channel.permissions_for(me)
    return [PERMISSION_NAMES[p] for p in REQUIRED if not getattr(perms, p)]


def error_sentence(code: str, channel_id: int) -> str:
    return ERROR_TEXT.get(code.split(":")[0], ERROR_TEXT["discord_error"]).format(channel=channel_id)


async def timezone_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=z, value=z) for z in search_timezones(current, 25)]


async def days_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    options = [d for d in DAY_SUGGESTIONS if current.lower() in d] or ([current] if current else DAY_SUGGESTIONS)
    return [app_commands.Choice(name=d[:100], value=d[:100]) for d in options][:25]


class Admin(commands.Cog):
    coach = app_commands.Group(
        name="coach",
        description="Set up and run the daily Accountability Check (admins).",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    def now(self) -> datetime:
        return self.bot.clock.now()

    async def admin_reply(self, interaction: discord.Interaction, text: str, **kwargs) -> None:  # noqa: ANN003
        """Reply, adding once any posting problem the admins have not been told about yet."""
        assert interaction.guild_id is not None
        pending = await self.storage.take_guild_error(interaction.guild_id)
        if pending:
            guild = await self.storage.get_guild(interaction.guild_id)
            text += "\n\n⚠️ " + error_sentence(pending, guild.channel_id if guild else 0)
        await reply(interaction, text, **kwargs)

    async def require_settings(self, guild_id: int) -> GuildSettings:
        guild = await self.storage.get_guild(guild_id)
        if guild is None:
            raise NotFound("There's no check-in set up here yet. Start with `/coach setup`.")
        return guild

    # ------------------------------------------------------------------ setup

    @coach.command(name="setup", description="Create or change the daily Accountability Check.")
    @app_commands.describe(
        channel="Where the check-in is posted",
        time="Local time in 24-hour HH:MM, e.g. 20:00",
        timezone="Your server's time zone, e.g. Europe/Berlin",
        days="every day, weekdays, weekends, or a list like mon,wed,fri",
        role="A role to ping with each check-in (optional)",
    )
    @app_commands.autocomplete(timezone=timezone_autocomplete, days=days_autocomplete)
    async def setup(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        time: app_commands.Range[str, 1, 20],
        timezone: app_commands.Range[str, 1, 64],
        days: app_commands.Range[str, 1, 100] | None = None,
        role: discord.Role | None = None,
    ) -> None:
        at = parse_time(time)
        tz = parse_timezone(timezone)
        mask = parse_days(days)
        guild = interaction.guild
        assert guild is not None
        me = guild.me
        live_channel = guild.get_channel(channel.id)
        if live_channel is None or me is None:
            raise BadInput(f"I can't see <#{channel.id}>. Pick a text channel I can read.")
        missing = missing_permissions(live_channel, me)
        if missing:
            raise BadInput(
                f"I can't post in <#{channel.id}>: I'm missing **{', '.join(missing)}** there. "
                "Give me those in the channel's permissions, then run `/coach setup` again."
            )
        if role is not None and role.is_default():
            raise BadInput("I won't ping @everyone. Pick a role members can opt into, or leave `role` empty.")
        if role is not None and not (role.mentionable or live_channel.permissions_for(me).mention_everyone):
            raise BadInput(
                f"I couldn't ping <@&{role.id}> in <#{channel.id}>: the role isn't mentionable and I'm not allowed "
                "to mention roles there, so nobody would be notified. Turn on **Allow anyone to @mention this "
                "role** in the role's settings (or give me **Mention @everyone, @here, and All Roles** in that "
                "channel), then run `/coach setup` again, or leave `role` empty. Nothing was changed."
            )
        now = self.now()
        nxt = next_occurrence(now, at, tz, mask)
        existing = await self.storage.get_guild(guild.id)
        await self.storage.upsert_guild(
            guild_id=guild.id, channel_id=channel.id, time_local=format_time(at), timezone=tz.key, days=mask,
            role_id=role.id if role else None, next_due=to_unix(nxt.due_utc), now=now,
        )
        verb = "Updated" if existing else "All set"
        lines = [
            f"{verb}: the Accountability Check runs in <#{channel.id}> at **{format_time(at)}** "
            f"({tz.key}), {format_days(mask)}.",
        ]
        if role is not None:
            lines.append(f"Each check-in pings <@&{role.id}>.")
        if existing and existing.paused:
            lines.append("It's paused right now; `/coach resume` starts it again.")
        else:
            lines.append(f"Next one: {ts(nxt.due_utc)} ({ts(nxt.due_utc, 'R')}).")
        await reply(interaction, "\n".join(lines))

    # ------------------------------------------------------------------ show

    @coach.command(name="show", description="This server's check-in settings and next runs.")
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        guild = await self.require_settings(interaction.guild_id)
        embed = discord.Embed(title="Accountability Check settings", colour=discord.Colour.blurple())
        embed.add_field(name="Channel", value=f"<#{guild.channel_id}>")
        embed.add_field(name="Time", value=f"{guild.time_local} ({guild.timezone})")
        embed.add_field(name="Days", value=format_days(guild.days))
        embed.add_field(name="Role ping", value=f"<@&{guild.role_id}>" if guild.role_id else "none")
        if guild.paused:
            embed.add_field(name="Status", value="Paused. `/coach resume` starts it again.", inline=False)
        else:
            runs, after, tz = [], self.now(), ZoneInfo(guild.timezone)
            for _ in range(3):
                occ = next_occurrence(after, parse_time(guild.time_local), tz, guild.days)
                runs.append(f"{ts(occ.due_utc)} ({ts(occ.due_utc, 'R')})")
                after = occ.due_utc
            embed.add_field(name="Next runs", value="\n".join(runs), inline=False)
        lessons = await self.storage.get_lesson_schedule(guild.guild_id)
        if lessons is not None:
            when = f"{WEEKDAY_LONG[lessons.weekday]}s at {lessons.time_local} ({lessons.timezone})"
            if lessons.next_due and not guild.paused:
                when += f", next {ts(from_unix(lessons.next_due), 'R')}"
            lessons_cog = self.bot.get_cog("Lessons")
            plan = await lessons_cog.plan_lines(guild.guild_id) if lessons_cog else []  # type: ignore[attr-defined]
            embed.add_field(name="Lessons", value="\n".join([f"<#{lessons.channel_id}>, {when}", *plan]),
                            inline=False)
        latest = await self.storage.latest_round(guild.guild_id)
        if latest and latest.message_id:
            link = f"https://discord.com/channels/{guild.guild_id}/{latest.channel_id}/{latest.message_id}"
            embed.add_field(name="Latest round", value=f"[{latest.local_date}]({link})", inline=False)
        rewards_cog = self.bot.get_cog("Rewards")
        for name, value in await rewards_cog.show_fields(guild.guild_id) if rewards_cog else []:  # type: ignore[attr-defined]
            embed.add_field(name=name, value=value, inline=False)
        if guild.last_error:
            when = ts(from_unix(guild.last_error_at), "R") if guild.last_error_at else ""
            embed.add_field(name="⚠️ Last problem", value=f"{error_sentence(guild.last_error, guild.channel_id)} "
                                                        f"{when}".strip(), inline=False)
            await self.storage.take_guild_error(guild.guild_id)
        await reply(interaction, embed=embed)

    # ------------------------------------------------------------------ pause / resume

    @coach.command(name="pause", description="Stop the scheduled check-ins until you resume.")
    async def pause(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        guild = await self.require_settings(interaction.guild_id)
        if guild.paused:
            await self.admin_reply(interaction, "Already paused. `/coach resume` starts it again.")
            return
        await self.storage.set_paused(guild.guild_id, True, None, self.now())
        await self.admin_reply(interaction, "Paused. No check-ins, DM check-ins or lessons go out until "
                                            "`/coach resume`; everyone's history stays as it is.")

    @coach.command(name="resume", description="Start the scheduled check-ins again.")
    async def resume(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        guild = await self.require_settings(interaction.guild_id)
        nxt = next_due_for(guild.time_local, guild.timezone, guild.days, self.now())
        if not guild.paused:
            await self.admin_reply(interaction, f"It's already running. Next one: {ts(nxt)} ({ts(nxt, 'R')}).")
            return
        await self.storage.set_paused(guild.guild_id, False, to_unix(nxt), self.now())
        await self.admin_reply(interaction, f"Back on. Next check-in: {ts(nxt)} ({ts(nxt, 'R')}).")

    # ------------------------------------------------------------------ post-now

    @coach.command(name="post-now", description="Post today's round now (never a second one for the same day).")
    async def post_now(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        guild = await self.require_settings(interaction.guild_id)
        await interaction.response.defer(ephemeral=True, thinking=True)
        rounds = self.bot.get_cog("Rounds")
        outcome = await rounds.post_today(guild)  # type: ignore[union-attr]
        await self.admin_reply(interaction, outcome)

    # ------------------------------------------------------------------ lessons (delegates to cogs/lessons.py)

    @coach.command(name="lessons", description="Where and when the weekly lessons are posted, and which track follows.")
    @app_commands.describe(channel="Where lessons are posted (needed the first time)",
                           weekday="Which day (default: Monday)", time="Local time in 24-hour HH:MM (default: 10:00)",
                           then="The track to post when the current one ends (default: the Core Track again)")
    @app_commands.choices(weekday=[app_commands.Choice(name=d, value=i) for i, d in enumerate(WEEKDAY_LONG)])
    async def lessons(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None,
                      weekday: app_commands.Choice[int] | None = None,
                      time: app_commands.Range[str, 1, 20] | None = None,
                      then: app_commands.Range[str, 1, 100] | None = None) -> None:
        cog = self.bot.get_cog("Lessons")
        if cog is None:
            raise NotFound("Lessons aren't switched on for this bot right now.")
        await cog.configure(interaction, channel, weekday.value if weekday else None, time, then)  # type: ignore[attr-defined]

    @lessons.autocomplete("then")
    async def _track_ac(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        needle = current.strip().casefold()
        return [app_commands.Choice(name=cut(f"{t.title} ({len(self.bot.lessons.track(t.name))} lessons)", 100),
                                    value=t.name)
                for t in self.bot.lessons.track_info if needle in t.name or needle in t.title.casefold()][:25]

    # ------------------------------------------------------------------ seasons and export (delegate to cogs/board.py)

    @coach.command(name="new-season", description="Start a new leaderboard season now (history stays).")
    @app_commands.describe(name="What to call it, e.g. Spring Sprint (default: Season N)")
    async def new_season(self, interaction: discord.Interaction,
                         name: app_commands.Range[str, 1, 50] | None = None) -> None:
        await self.bot.get_cog("Board").new_season(interaction, name)  # type: ignore[union-attr]

    @coach.command(name="export", description="This server's check-ins as a CSV file.")
    async def export(self, interaction: discord.Interaction) -> None:
        await self.bot.get_cog("Board").export(interaction)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ the server's web page (delegates to cogs/web.py)

    @coach.command(name="web", description="This server's public page: switch it on or off, or make a new link.")
    @app_commands.describe(action="on: make the page; off: take it down; new-link: replace its address. "
                                  "Empty: show it")
    @app_commands.choices(action=[app_commands.Choice(name=a, value=a) for a in ("on", "off", "new-link")])
    async def web(self, interaction: discord.Interaction, action: app_commands.Choice[str] | None = None) -> None:
        await self.bot.get_cog("Web").coach_web(interaction, action.value if action else None)  # type: ignore[union-attr]


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Admin(bot))
