"""/coach adjust, /coach undo, /coach freezes (and /coach rewards): admin corrections and rewards.

These are subcommands of the /coach group that cogs/admin.py defines: this cog's commands are attached to it
when the cog loads (see `cog_load`), so /coach stays one command with one set of default permissions."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from coach import board, rewards
from coach.clock import from_unix
from coach.errors import BadInput, Conflict, NotFound
from coach.outbox import Fail, Job, Sent, Skip
from coach.text import CONTENT_MAX, EMBED_FIELD_VALUE_MAX, cut_block, safe_name, ts
from cogs.board import guild_tz
from cogs.common import member_name, reply
from cogs.outbox import GuildUnavailable

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.rewards")
DIRTY_BATCH = 500  # members looked at per tick
CORRECTIONS_HEADER = ("when_utc", "member_id", "name", "kind", "points", "date", "status", "reason", "admin_id")


class Rewards(commands.Cog):
    rewards_group = app_commands.Group(name="rewards", description="Roles members earn: at thresholds, or weekly.")

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        """Register the outbox's kind 'role', and move this cog's app commands under /coach (the Admin cog's
        group)."""
        self.bot.outbox.register("role", self.deliver_role, in_flight=4)
        admin = self.bot.get_cog("Admin")
        assert admin is not None, "cogs.admin must load before cogs.rewards"
        coach: app_commands.Group = admin.coach  # type: ignore[attr-defined]
        for command in self.__cog_app_commands__:  # already this cog's copies, bound to it
            command.parent = coach
            coach.add_command(command)
        self.__cog_app_commands__ = []  # not top-level commands of their own

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    async def who(self, guild_id: int, user: discord.User | discord.Member) -> str:
        """The member's name for a reply, or NotFound for someone who isn't (and never was) a member here."""
        if user.bot:
            raise NotFound(f"{safe_name(member_name(user))} is a bot; bots don't check in or earn points.")
        stored = await self.storage.get_member(guild_id, user.id)
        if not isinstance(user, discord.Member) and stored is None:
            raise NotFound(f"{safe_name(member_name(user))} isn't a member of this server and has nothing stored "
                           "here. Pick someone from this server.")
        return safe_name(stored.display_name if stored and stored.display_name else member_name(user))

    # ------------------------------------------------------------------ corrections

    @app_commands.command(name="adjust", description="Add or take points from a member, with a reason they can see.")
    @app_commands.describe(member="Whose points", points="How many to add (negative to take away), -100 to 100",
                           reason="Why (the member sees it in /me export)")
    async def adjust(self, interaction: discord.Interaction, member: discord.User,
                     points: app_commands.Range[int, -1000, 1000],
                     reason: app_commands.Range[str, 1, 1000]) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        name = await self.who(guild_id, member)
        points, reason = rewards.check_adjustment(points, reason, await self.storage.board_points(guild_id, member.id))
        await self.storage.adjust_points(guild_id, member.id, points, reason, interaction.user.id,
                                         self.bot.clock.now())
        total = await self.storage.board_points(guild_id, member.id)
        verb = f"Added **{points}** point{'s' if points != 1 else ''} to" if points > 0 else \
            f"Took **{-points}** point{'s' if points != -1 else ''} from"
        await reply(interaction, f"{verb} {name}'s board total: **{total:,}** now. The reason is in their "
                                 "`/me export` and in `/coach export`.")

    @app_commands.command(name="undo", description="Remove a member's check-in of one date, and its point.")
    @app_commands.describe(member="Whose check-in", date="The check-in's date: YYYY-MM-DD, today or yesterday",
                           reason="Why (optional; the member sees it in /me export)")
    async def undo(self, interaction: discord.Interaction, member: discord.User,
                   date: app_commands.Range[str, 1, 20], reason: app_commands.Range[str, 1, 1000] | None = None) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        name = await self.who(guild_id, member)
        today = board.local_today(self.bot.clock.now(), await guild_tz(self.bot, guild_id))
        day = rewards.parse_day(date, today).isoformat()
        why = rewards.check_reason(reason) if reason else None
        undone = await self.storage.undo_checkin(guild_id, member.id, day, why, interaction.user.id,
                                                 self.bot.clock.now())
        if undone is None:
            raise NotFound(f"{name} has no check-in on {day}, so there's nothing to undo. Their check-in dates "
                           "are in `/coach export`.")
        await self.storage.mark_role_dirty(guild_id, member.id)  # a streak role may go with it
        total = await self.storage.board_points(guild_id, member.id)
        await reply(interaction, f"Removed {name}'s check-in of {day} ({undone.status}) and its point: "
                                 f"**{total:,}** on the board now. Their streak is counted without it.")

    async def export_corrections(self, interaction: discord.Interaction) -> None:
        """The server's corrections as a CSV (sent with /coach export when there are any)."""
        guild_id = interaction.guild_id
        assert guild_id is not None
        items = await self.storage.corrections_of(guild_id, limit=100_000)
        if not items:
            return
        names = await self.storage.display_names(guild_id, [c.user_id for c in items])
        with board.CsvParts(f"bounce-corrections-{guild_id}", header=CORRECTIONS_HEADER) as parts:
            rows = [(datetime.fromtimestamp(c.created_at, UTC).isoformat(), str(c.user_id),
                     board.spreadsheet_safe(names.get(c.user_id)), c.kind, str(c.amount), c.local_date or "",
                     c.status or "", board.spreadsheet_safe(c.reason), str(c.admin_id)) for c in items]
            await asyncio.to_thread(lambda: [parts.write(r) for r in rows])
            paths = await asyncio.to_thread(parts.finish)
            for path in paths:
                await reply(interaction, f"And the corrections admins made: **{len(items):,}** (adjustments and "
                                         "undone check-ins, with who made them and why).",
                            file=discord.File(path, filename=path.name))

    # ------------------------------------------------------------------ streak freezes

    @app_commands.command(name="freezes", description="Streak freezes: a missed round doesn't break a streak.")
    @app_commands.describe(state="on or off (leave empty to see the setting)")
    @app_commands.choices(state=[app_commands.Choice(name="on", value="on"),
                                 app_commands.Choice(name="off", value="off")])
    async def freezes(self, interaction: discord.Interaction, state: app_commands.Choice[str] | None = None) -> None:
        assert interaction.guild_id is not None
        if state is not None:
            await self.storage.set_freezes(interaction.guild_id, state.value == "on", self.bot.clock.now())
        on = await self.storage.freezes_on(interaction.guild_id)
        if on:
            text = ("Streak freezes are **on**: every 7 rounds answered in a row earn one (at most 2 held), and a "
                    "missed round uses one so the streak lives on.")
        else:
            text = "Streak freezes are **off**: a missed round ends the streak, as it used to."
        if state is not None:
            text += " Every streak is counted this way from now on, across its whole history."
        await reply(interaction, text)


    # ------------------------------------------------------------------ role rewards

    def check_role(self, guild: discord.Guild, role: discord.Role) -> None:
        """Before anything is stored: a role I can give (Manage Roles, below my highest role, not managed)."""
        me = guild.me
        if role.is_default():
            raise BadInput("Everyone has @everyone already. Pick a role of its own.")
        if role.managed:
            raise BadInput(f"<@&{role.id}> belongs to a bot or an integration, so nobody can give it. Pick "
                           "another role. Nothing was stored.")
        if me is None or not me.guild_permissions.manage_roles:
            raise BadInput("I need the **Manage Roles** permission to give roles. Add it to my role in Server "
                           "Settings → Roles, then run this again. Nothing was stored.")
        if role >= me.top_role:
            raise BadInput(f"<@&{role.id}> sits above my highest role, and Discord only lets me give roles below "
                           "it. Drag my role above it in Server Settings → Roles, then run this again. Nothing "
                           "was stored.")

    @rewards_group.command(name="add", description="Give a role when a member reaches a threshold.")
    @app_commands.describe(kind="What counts", threshold="How many earn the role", role="The role to give",
                           keep="Streak roles: keep the role when the streak breaks (default: taken back)")
    @app_commands.choices(kind=[app_commands.Choice(name=rewards.KIND_LABELS[k], value=k)
                                for k in rewards.REWARD_KINDS])
    async def rewards_add(self, interaction: discord.Interaction, kind: app_commands.Choice[str],
                          threshold: app_commands.Range[int, 1, 100_000], role: discord.Role,
                          keep: bool = False) -> None:
        guild = interaction.guild
        assert guild is not None
        threshold = rewards.check_threshold(kind.value, threshold)
        self.check_role(guild, role)
        added = await self.storage.add_reward(guild.id, kind.value, threshold, role.id, keep and kind.value ==
                                              "streak", self.bot.clock.now())
        if added is None:
            raise Conflict(f"<@&{role.id}> is already a {rewards.KIND_LABELS[kind.value]} reward here. "
                           "`/coach rewards remove` it first to change its threshold.")
        await reply(interaction, f"Added: {rewards.describe_reward(added.kind, added.threshold, added.role_id, added.keep)}. "
                                 "Members who already qualify get it within a minute.")

    @rewards_group.command(name="weekly", description="Give a role to the top of last week's board, passed on weekly.")
    @app_commands.describe(role="The role to give", top="How many of the top get it (default 1)")
    async def rewards_weekly(self, interaction: discord.Interaction, role: discord.Role,
                             top: app_commands.Range[int, 1, 100] = 1) -> None:
        guild = interaction.guild
        assert guild is not None
        top = rewards.check_top(top)
        self.check_role(guild, role)
        added = await self.storage.add_reward(guild.id, "weekly", top, role.id, False, self.bot.clock.now())
        assert added is not None
        await reply(interaction, f"Set: {rewards.describe_reward('weekly', top, role.id, False)}. It changes hands "
                                 "when the weekly recap posts.")

    @rewards_group.command(name="list", description="The roles members can earn here.")
    async def rewards_list(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        items = await self.storage.rewards_of(interaction.guild_id)
        if not items:
            await reply(interaction, "No role rewards yet. `/coach rewards add` gives a role at a streak, "
                                     "check-in, finished-project or depth threshold; `/coach rewards weekly` "
                                     "passes one to last week's top.")
            return
        lines = [f"• {rewards.describe_reward(r.kind, r.threshold, r.role_id, r.keep)}"
                 + (" ⚠️" if r.last_error else "") for r in items]
        await reply(interaction, cut_block("**Role rewards**\n" + "\n".join(lines), CONTENT_MAX))

    @rewards_group.command(name="remove", description="Stop giving a role (members who have it keep it).")
    @app_commands.describe(role="The reward's role")
    async def rewards_remove(self, interaction: discord.Interaction, role: discord.Role) -> None:
        assert interaction.guild_id is not None
        gone = [await self.storage.remove_reward(interaction.guild_id, r.id)
                for r in await self.storage.rewards_of(interaction.guild_id) if r.role_id == role.id]
        if not gone:
            raise NotFound(f"<@&{role.id}> isn't a reward here. `/coach rewards list` shows the ones there are.")
        await reply(interaction, f"Removed: I won't give <@&{role.id}> any more. Members who have it keep it.")

    async def show_fields(self, guild_id: int) -> list[tuple[str, str]]:
        """For /coach show: streak freezes, the role rewards and any that failed lately (role deleted, permission
        removed)."""
        fields = [("Streak freezes", "on (`/coach freezes off` to stop them)" if await self.storage.freezes_on(
            guild_id) else "off (`/coach freezes on` to start them)")]
        lines = []
        for r in await self.storage.rewards_of(guild_id):
            line = f"• {rewards.describe_reward(r.kind, r.threshold, r.role_id, r.keep)}"
            if r.last_error:
                when = f" ({ts(from_unix(r.last_error_at), 'R')})" if r.last_error_at else ""
                line += f"\n  ⚠️ Couldn't change it{when}: {rewards.ROLE_ERRORS.get(r.last_error, r.last_error)}"
            lines.append(line)
        if lines:
            fields.append(("Role rewards", cut_block("\n".join(lines), EMBED_FIELD_VALUE_MAX)))
        return fields

    async def run_due(self) -> int:
        """Every tick: members whose points changed are checked against the rewards (a role at a threshold), and
        servers that posted a new round have their streak roles checked (a streak may have broken). Each change
        is queued in the outbox once. Returns how many were queued."""
        storage, now, queued = self.storage, self.bot.clock.now(), 0
        dirty = await storage.role_dirty(DIRTY_BATCH)
        by_guild: dict[int, list[tuple[int, int]]] = {}
        for guild_id, user_id, seq in dirty:
            by_guild.setdefault(guild_id, []).append((user_id, seq))
        for guild_id, seen in by_guild.items():
            items = await storage.rewards_of(guild_id)
            figures = await storage.reward_figures(guild_id, [u for u, _ in seen],
                                                   streaks=any(r.kind == "streak" for r in items))
            add, remove = rewards.role_changes(items, figures, await storage.role_holders(guild_id))
            queued += await storage.queue_role_changes(guild_id, add, remove, now, seen=seen)
        for guild_id, round_date in await storage.streak_checks_due():
            items = [r for r in await storage.rewards_of(guild_id) if r.kind == "streak" and not r.keep]
            holders = await storage.role_holders(guild_id, [r.id for r in items])
            figures = await storage.reward_figures(guild_id, {u for _, u in holders})
            _, remove = rewards.role_changes(items, figures, holders, gains=False)
            queued += await storage.queue_role_changes(guild_id, [], remove, now, streak_round=round_date)
        if queued:
            log.info("role rewards: %d change(s) queued", queued)
            self.bot.outbox.wake()
        return queued

    async def deliver_role(self, job: Job) -> Sent:
        """One role change (the outbox's kind 'role'): known problems are found before asking Discord (no 403s
        toward the invalid-request limit); the request goes through the shared send budget."""
        change = await self.storage.get_role_change(job.ref_id)
        if change is None:
            raise Skip("gone")
        if (change.action == "add") != await self.storage.holds_reward(change.guild_id, change.reward_id,
                                                                       change.user_id):
            raise Skip("superseded")  # changed back meanwhile: a later change stands
        guild = self.bot.get_guild(change.guild_id)
        if guild is None or guild.unavailable:
            raise GuildUnavailable()
        role, me = guild.get_role(change.role_id), guild.me
        if role is None:
            raise Fail("role_deleted")
        if me is None or not me.guild_permissions.manage_roles:
            raise Fail("missing_permission")
        if role >= me.top_role:
            raise Fail("role_too_high")
        reason = "Bounce role reward"
        try:
            if change.action == "add":
                await self.bot.http.add_role(guild.id, change.user_id, role.id, reason=reason)
            else:
                await self.bot.http.remove_role(guild.id, change.user_id, role.id, reason=reason)
        except discord.NotFound as exc:
            raise Fail({10011: "role_deleted", 10007: "member_left"}.get(exc.code, f"not_found:{exc.code}")) from exc
        return Sent(0)


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Rewards(bot))
