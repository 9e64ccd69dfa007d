"""/leaderboard, /stats, seasons and the server export. (The weekly recap: cogs/recap.py; servers that left:
cogs/servers.py.)"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from coach import board, checkins, journey
from coach.clock import to_unix
from coach.errors import Conflict, NotAllowed
from coach.heatmap import render_heatmap
from coach.streaks import checkin_rate
from coach.text import EMBED_FIELD_VALUE_MAX, cut_block, safe_name, safe_title
from cogs.common import ConfirmButton, confirm_view, confirmable, member_name, reply
from cogs.pages import Pager, register, setup_pages

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.board")
EXPORT_BATCH = 2000
COLOUR = discord.Colour.from_rgb(241, 196, 15)


def name_of(names: dict[int, str], user_id: int) -> str:
    return board.member_label(names.get(user_id), user_id)


async def guild_tz(bot: BounceBot, guild_id: int) -> str:
    settings = await bot.storage.get_guild(guild_id)
    return settings.timezone if settings else "UTC"


# ---------------------------------------------------------------------------------------------- leaderboard


class BoardPager(Pager):
    """One member's view of the board; the key carries server, period (week, month, s<season id>, all), caller."""

    def __init__(self, bot: BounceBot, guild_id: int, period: str, caller: int, depth: bool = False) -> None:
        super().__init__(key=f"lb:{guild_id}:{period}:{caller}" + (":d" if depth else ""), guild_id=guild_id,
                         owner_id=caller)
        self.bot, self.guild_id, self.period, self.caller, self.depth = bot, guild_id, period, caller, depth

    async def window(self) -> board.Window:
        storage, now = self.bot.storage, self.bot.clock.now()
        tz = await guild_tz(self.bot, self.guild_id)
        if self.period.startswith("s"):
            season = await storage.get_season(int(self.period[1:]))
            if season is not None and season.guild_id == self.guild_id:
                return board.window_for("season", now, tz, (season.id, season.name, season.started_at))
            return board.window_for("all", now, tz, None)
        return board.window_for(self.period, now, tz, None)

    async def render(self, page: int) -> tuple[discord.Embed, int]:
        storage = self.bot.storage
        window = await self.window()
        if window.period == "season":
            period_id = await storage.season_period(window.season_id) or 0
        elif window.period in ("week", "month"):
            period_id = await storage.window_period(self.guild_id, window.period, window.start)
        else:
            period_id = 0
        rows = await (storage.depth_board if self.depth else storage.board_totals)(self.guild_id, period_id)
        scores = [board.Score(r.user_id, r.points, r.depth, r.reached_at) for r in rows]
        page, pages = board.clamp_page(page, len(scores))
        if self.depth:
            ranked = board.rank_by_depth(scores)
        else:
            needed = board.streaks_needed(scores, page, self.caller)
            streaks = await storage.current_streaks(self.guild_id, needed)
            ranked = board.rank(scores, streaks)
        shown = ranked[page * board.PAGE_SIZE:(page + 1) * board.PAGE_SIZE]
        mine = next((r for r in ranked if r.score.user_id == self.caller), None)
        names = await storage.display_names(self.guild_id, [r.score.user_id for r in shown] + [self.caller])
        embed = discord.Embed(title=f"{'Depth board' if self.depth else 'Leaderboard'} · {window.label}",
                              colour=COLOUR)
        if shown and self.depth:
            embed.description = "\n".join(f"**{r.rank}.** {name_of(names, r.score.user_id)} · ✨ **{r.score.depth:,}**"
                                          for r in shown)
        elif self.depth:
            embed.description = ("No depth points yet in this period. Reflecting on a lesson earns two, marking its "
                                 "Your Turn done earns one.")
        elif shown:
            embed.description = "\n".join(self.line(r, names) for r in shown)
        else:
            embed.description = ("No points yet in this period. Every answer to the Accountability Check "
                                 "earns one; be the first on the board.")
        if mine is not None and self.depth:
            you = f"**#{mine.rank}** of {len(ranked):,} · ✨ **{mine.score.depth:,}** depth"
        elif mine is not None:
            you = (f"**#{mine.rank}** of {len(ranked):,} · **{mine.score.points:,}** pts · 🔥 {mine.streak} · "
                   f"✨ {mine.score.depth:,} depth")
        elif self.depth:
            you = "No depth points in this period yet. `/lesson next` is a good place to start."
        else:
            you = "No points in this period yet. Answer the next check-in and you're on the board."
        embed.add_field(name=f"You · {name_of(names, self.caller)}", value=you, inline=False)
        embed.set_footer(text=f"Page {page + 1}/{pages} · ✨ depth points: reflections and lesson exercises done" if
                         self.depth else f"Page {page + 1}/{pages} · points = check-ins + finished projects · "
                         "ties: longer streak, then who got there first · ✨ depth points from lessons")
        return embed, pages

    @staticmethod
    def line(r: board.Ranked, names: dict[int, str]) -> str:
        return (f"**{r.rank}.** {name_of(names, r.score.user_id)} · **{r.score.points:,}** pts · 🔥 {r.streak} · "
                f"✨ {r.score.depth:,}")


@register("lb")
def _board_pager(bot: BounceBot, args: list[str]) -> Pager:
    return BoardPager(bot, int(args[0]), args[1], int(args[2]), depth=args[3:] == ["d"])


confirmable("ns", cog="Board", method="confirm_season", yes="Start the new season", no="Cancel")


class Board(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        setup_pages(self.bot)
        self.bot.add_dynamic_items(ConfirmButton)

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    # ------------------------------------------------------------------ /leaderboard

    @app_commands.command(name="leaderboard", description="Who's showing up: points this week, month, season or all time.")
    @app_commands.describe(period="Which points count (default: the current season, or all time)",
                           page="Page number (10 members per page)",
                           rank="Rank by check-in points (default) or by depth points from lessons")
    @app_commands.choices(period=[app_commands.Choice(name=p, value=p) for p in board.PERIODS],
                          rank=[app_commands.Choice(name="points", value="points"),
                                app_commands.Choice(name="depth", value="depth")])
    @app_commands.guild_only()
    async def leaderboard(self, interaction: discord.Interaction, period: app_commands.Choice[str] | None = None,
                          page: app_commands.Range[int, 1, 100000] = 1,
                          rank: app_commands.Choice[str] | None = None) -> None:
        assert interaction.guild_id is not None
        chosen = period.value if period else "season"
        if chosen == "season":
            season = await self.storage.current_season(interaction.guild_id, self.bot.clock.now())
            chosen = f"s{season.id}" if season else "all"
        await self.storage.touch_member(interaction.guild_id, interaction.user.id, member_name(interaction.user),
                                        self.bot.clock.now())
        depth = rank is not None and rank.value == "depth"
        await BoardPager(self.bot, interaction.guild_id, chosen, interaction.user.id, depth).send(interaction, page - 1)

    # ------------------------------------------------------------------ /stats

    @app_commands.command(name="stats", description="Streaks, check-in rate, projects and a heatmap of the past months.")
    @app_commands.describe(member="Whose stats (default: yours)")
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction, member: discord.Member | None = None) -> None:
        assert interaction.guild_id is not None
        guild_id, who = interaction.guild_id, member or interaction.user
        mine = who.id == interaction.user.id
        name = safe_name(member_name(who))
        await interaction.response.defer(ephemeral=True, thinking=True)
        lessons = await journey.progress(self.storage, self.bot.lessons, guild_id, who.id)
        if await self.storage.count_checkins(guild_id, who.id) == 0 and (lessons.depth or lessons.reflected):
            embed = discord.Embed(title=f"Stats · {name}", colour=COLOUR, description=(
                "No check-ins here yet: the streak and heatmap start with the first answer to the Accountability "
                "Check." if mine else f"{name} hasn't checked in here yet; their lesson work so far:"))
            embed.add_field(name="Lessons", value=journey.progress_summary(lessons), inline=False)
            await reply(interaction, embed=embed)
            return
        if await self.storage.count_checkins(guild_id, who.id) == 0:
            await reply(interaction, "You haven't checked in here yet. Answer the next Accountability Check "
                                     "(or use `/checkin`) and your stats start from there." if mine else
                        f"{name} hasn't checked in here yet, so there's nothing to show. Their stats start "
                        "with their first answer.")
            return
        embed, png = await self.stats_card(guild_id, who.id, name)
        embed.insert_field_at(3, name="Lessons", value=journey.progress_summary(lessons), inline=False)
        await reply(interaction, embed=embed, file=discord.File(io.BytesIO(png), filename="heatmap.png"))

    async def stats_card(self, guild_id: int, user_id: int, name: str) -> tuple[discord.Embed, bytes]:
        storage = self.storage
        tz = await guild_tz(self.bot, guild_id)
        today = board.local_today(self.bot.clock.now(), tz)
        history = await checkins.load_history(storage, guild_id, user_id)
        days = history.days()
        streak = history.streak()
        rate = checkin_rate(days, board.RATE_ROUNDS)
        counts = await storage.count_projects(guild_id, user_id)
        depth = await storage.depth_points(guild_id, user_id)
        png = await asyncio.to_thread(render_heatmap, board.heatmap_days(days, today), today, board.HEATMAP_WEEKS)
        embed = discord.Embed(title=f"Stats · {name}", colour=COLOUR)
        embed.add_field(name="Streak", value=f"🔥 **{streak.current}** now · best **{streak.best}**"
                        + (board.freezes_line(streak) if history.freezes and (streak.freezes or
                                                                              streak.frozen_after(None)) else ""))
        rounds = min(board.RATE_ROUNDS, sum(1 for d in days if d.status or not (d.away or d.open)))
        embed.add_field(name="Check-in rate", value=f"**{board.percent(rate)}** of the last {rounds} rounds")
        embed.add_field(name="Depth points", value=f"✨ **{depth:,}**")
        embed.add_field(name="Projects", value=board.finish_rate_text(counts), inline=False)
        recent = [board.streak_day_line(d) for d in streak.days[-board.RECENT_ROUNDS:]]
        embed.add_field(name=f"Last {len(recent)} round{'s' if len(recent) != 1 else ''}, and what each did to "
                             "the streak",
                        value=cut_block("\n".join(recent), EMBED_FIELD_VALUE_MAX) if recent else "No rounds yet.",
                        inline=False)
        embed.set_image(url="attachment://heatmap.png")
        embed.set_footer(text=f"The last {board.HEATMAP_WEEKS} weeks: green finished, yellow unfinished, "
                              "light grey skipped, slate blue missed, dark no round. Away days neither count nor "
                              "break a streak.")
        return embed, png

    # ------------------------------------------------------------------ seasons (from /coach new-season)

    async def new_season(self, interaction: discord.Interaction, name: str | None) -> None:
        assert interaction.guild_id is not None
        guild_id, now = interaction.guild_id, self.bot.clock.now()
        clean = " ".join((name or "").split()) or f"Season {await self.storage.count_seasons(guild_id) + 1}"
        token = await self.storage.put_confirm(guild_id, interaction.user.id, "season", clean, now)
        current = await self.storage.current_season(guild_id, now)
        text = (f"Start **{safe_title(clean, 60)}** now? From this moment the leaderboard counts "
                "fresh points by default. Nothing is deleted: `/leaderboard period:all` still shows all of it.")
        if current:
            text += f"\nThis closes **{safe_title(current.name, 60)}**."
        await reply(interaction, text, view=confirm_view("ns", guild_id, interaction.user.id, token))

    async def confirm_season(self, interaction: discord.Interaction, user_id: int, token: int, go: bool) -> None:
        if interaction.user.id != user_id or interaction.guild_id is None:
            raise NotAllowed("Only the admin who asked for the new season can confirm it; nothing changed.")
        guild_id, now = interaction.guild_id, self.bot.clock.now()
        if not go:
            await self.storage.drop_confirm(guild_id, user_id, "season", token)
            await interaction.response.edit_message(content="No new season; nothing changed.", view=None)
            return
        found, name = await self.storage.take_confirm(guild_id, user_id, "season", token,
                                                      to_unix(now - board.CONFIRM_MAX_AGE))
        if not found:
            raise Conflict("That confirmation has expired or was already used. Run `/coach new-season` again.")
        season = await self.storage.start_season(guild_id, name or "New season", now)
        await interaction.response.edit_message(
            content=f"**{safe_title(season.name, 60)}** has started. Everyone begins at zero on the "
                    "default leaderboard; all history stays under `period:all`. Here's to a season of finished "
                    "tracks.", view=None)

    # ------------------------------------------------------------------ export (from /coach export)

    async def export(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        perms = interaction.permissions
        if not (perms.manage_guild or perms.administrator):
            raise NotAllowed("Exporting everyone's check-ins needs the **Manage Server** permission.")
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild_id = interaction.guild_id
        with board.CsvParts(f"bounce-checkins-{guild_id}", limit=board.ATTACHMENT_LIMIT) as parts:
            after: tuple[str, int] | None = None
            while True:
                batch = await self.storage.export_checkins(guild_id, after, EXPORT_BATCH)
                rows = [board.csv_row(r.local_date, r.user_id, r.display_name, r.status, r.project, r.note)
                        for r in batch]
                await asyncio.to_thread(lambda rows=rows: [parts.write(row) for row in rows])
                if len(batch) < EXPORT_BATCH:
                    break
                after = (batch[-1].local_date, batch[-1].id)
            paths = await asyncio.to_thread(parts.finish)
            total = parts.rows
            for i, path in enumerate(paths, 1):
                if i == 1:
                    text = f"Here are this server's check-ins: **{total:,}** rows (date, member id, name, status, " \
                           "project, note)."
                    if len(paths) > 1:
                        text += f" It's large, so it comes in {len(paths)} files, each under " \
                                f"{board.ATTACHMENT_LIMIT // (1024 * 1024)} MiB."
                else:
                    text = f"Part {i} of {len(paths)}."
                await reply(interaction, text, file=discord.File(path, filename=path.name))
        rewards = self.bot.get_cog("Rewards")
        if rewards is not None:  # the admins' corrections, in a file of their own
            await rewards.export_corrections(interaction)  # type: ignore[attr-defined]


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Board(bot))
