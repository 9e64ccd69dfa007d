"""/project: start, list, finish, drop. Finishing one is celebrated in the check-in channel."""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import discord
from discord import app_commands
from discord.ext import commands

from coach import metrics, projects, voice
from coach.storage import Project
from coach.text import safe_name, safe_title
from cogs.common import Repeats, member_name, reply
from cogs.pages import PAGE_SIZE, Pager, register, setup_pages
from cogs.rounds import project_choices

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.projects")
STATUS_MARK = {"active": "🎛️", "finished": "✅", "dropped": "🗂️"}


def project_line(p: Project) -> str:
    line = f"{STATUS_MARK[p.status]} **{safe_title(p.name)}** · {p.status}"
    if p.deadline and p.status == "active":
        line += f" · due {p.deadline}"
    return line


class Projects(commands.Cog):
    project = app_commands.Group(name="project", description="Your projects: tracks, EPs, mixes.", guild_only=True)

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self.repeats = Repeats()  # a double submit answers as the first did

    def today(self, guild_id: int, tz: str | None) -> date:
        return self.bot.clock.now().astimezone(ZoneInfo(tz or "UTC")).date()

    async def guild_tz(self, guild_id: int) -> str | None:
        guild = await self.bot.storage.get_guild(guild_id)
        return guild.timezone if guild else None

    @project.command(name="start", description="Start a project you mean to finish.")
    @app_commands.describe(name="What is it called?", deadline="Optional finish date, YYYY-MM-DD")
    async def start(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 200],
                    deadline: app_commands.Range[str, 1, 30] | None = None) -> None:
        assert interaction.guild_id is not None
        today = self.today(interaction.guild_id, await self.guild_tz(interaction.guild_id))
        due = projects.parse_deadline(deadline, today)
        now = self.bot.clock.now()
        await self.bot.storage.touch_member(interaction.guild_id, interaction.user.id,
                                            member_name(interaction.user), now)
        async def start() -> str:
            created = await projects.start(self.bot.storage, interaction.guild_id, interaction.user.id, name, due,
                                           now)
            coach_line = await voice.say(self.bot.storage, self.bot.prompts, self.bot.rng, "project_started",
                                         guild_id=interaction.guild_id, user_id=interaction.user.id,
                                         project=safe_title(created.name),
                                         member=safe_name(member_name(interaction.user)), streak=0,
                                         server=safe_name(interaction.guild.name if interaction.guild else ""))
            extra = f" Deadline: **{due}**." if due else ""
            return f"Started **{safe_title(created.name)}**.{extra}\n{coach_line}"

        await reply(interaction, await self.repeats.once(("start", interaction.guild_id, interaction.user.id, name,
                                                          due), start))

    @project.command(name="list", description="Your projects, or another member's.")
    @app_commands.describe(member="Whose projects (default: yours)")
    async def list_(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        assert interaction.guild_id is not None
        who = member or interaction.user
        pager = ProjectPager(self.bot, interaction.guild_id, who.id, safe_name(member_name(who)))
        await pager.send(interaction)

    @project.command(name="finish", description="Mark one of your projects finished (+5 points).")
    @app_commands.describe(name="Which of your active projects")
    async def finish(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 200]) -> None:
        assert interaction.guild_id is not None
        now = self.bot.clock.now()
        who = safe_name(member_name(interaction.user))
        server = safe_name(interaction.guild.name if interaction.guild else "")
        first: list[bool] = []

        async def finish() -> tuple[str, projects.FinishOutcome]:
            first.append(True)
            outcome = await projects.finish(self.bot.storage, interaction.guild_id, interaction.user.id, name, now)
            text = await voice.say(self.bot.storage, self.bot.prompts, self.bot.rng, "project_finished_reply",
                                   guild_id=interaction.guild_id, user_id=interaction.user.id,
                                   project=safe_title(outcome.project.name), member=who, streak=0, server=server)
            points = " (+5 points)" if outcome.points else ""
            return f"**{safe_title(outcome.project.name)}** is finished{points}.\n{text}", outcome

        text, outcome = await self.repeats.once(("finish", interaction.guild_id, interaction.user.id, name), finish)
        await reply(interaction, text)
        if outcome.announce and first:  # announced once, by the first of a double submit
            await self.announce(interaction.guild_id, interaction.user.id, outcome.project, server)

    async def announce(self, guild_id: int, user_id: int, project: Project, server: str) -> None:
        guild = await self.bot.storage.get_guild(guild_id)
        if guild is None:
            return
        channel = self.bot.guild_channel(guild_id, guild.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return
        text = await voice.say(self.bot.storage, self.bot.prompts, self.bot.rng, "project_finished_announce",
                               guild_id=guild_id, user_id=voice.SERVER,
                                      member=f"<@{user_id}>", project=safe_title(project.name),
                                      streak=0, server=server)
        try:
            await channel.send(text, allowed_mentions=discord.AllowedMentions(
                everyone=False, roles=False, users=[discord.Object(user_id)]))
            metrics.post_sent("celebration")
        except discord.HTTPException as exc:
            metrics.post_failed("celebration", exc)
            log.warning("could not announce finished project %s in guild %s: %s", project.id, guild_id, exc)

    @project.command(name="drop", description="Let a project go, on purpose.")
    @app_commands.describe(name="Which of your active projects")
    async def drop(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 200]) -> None:
        assert interaction.guild_id is not None
        dropped = await projects.drop(self.bot.storage, interaction.guild_id, interaction.user.id, name,
                                      self.bot.clock.now())
        text = await voice.say(self.bot.storage, self.bot.prompts, self.bot.rng, "project_dropped",
                               guild_id=interaction.guild_id, user_id=interaction.user.id,
                               project=safe_title(dropped.name),
                                      member=safe_name(member_name(interaction.user)), streak=0,
                                      server=safe_name(interaction.guild.name if interaction.guild else ""))
        await reply(interaction, f"Dropped **{safe_title(dropped.name)}**.\n{text}")

    @finish.autocomplete("name")
    @drop.autocomplete("name")
    async def _names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await project_choices(self.bot, interaction, current)


class ProjectPager(Pager):
    def __init__(self, bot: BounceBot, guild_id: int, user_id: int, name: str | None) -> None:
        super().__init__(key=f"pj:{guild_id}:{user_id}", guild_id=guild_id)
        self.bot, self.user_id, self.name = bot, user_id, name

    async def render(self, page: int) -> tuple[discord.Embed, int]:
        counts = await self.bot.storage.count_projects(self.guild_id, self.user_id)
        total = sum(counts.values())
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        rows = await self.bot.storage.list_projects(self.guild_id, self.user_id, limit=PAGE_SIZE,
                                                    offset=page * PAGE_SIZE)
        if self.name is None:
            member = await self.bot.storage.get_member(self.guild_id, self.user_id)
            self.name = safe_name(member.display_name) if member and member.display_name else "a member"
        embed = discord.Embed(title=f"Projects · {self.name}", colour=discord.Colour.blurple())
        if not rows:
            embed.description = "No projects yet. `/project start` names the thing you're going to finish."
        else:
            embed.description = "\n".join(project_line(p) for p in rows)
        embed.set_footer(text=f"{counts['active']} active · {counts['finished']} finished · "
                              f"{counts['dropped']} dropped · page {page + 1}/{pages}")
        return embed, pages


async def setup(bot: BounceBot) -> None:
    setup_pages(bot)
    await bot.add_cog(Projects(bot))


@register("pj")
def _project_pager(bot: BounceBot, args: list[str]) -> Pager:
    guild_id, user_id = int(args[0]), int(args[1])
    return ProjectPager(bot, guild_id, user_id, None)
