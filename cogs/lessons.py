"""Lessons: the weekly lesson post (paced, exactly once) and /coach lessons. Members' side: cogs/lesson_reading.py
(/lesson commands) and cogs/lesson_buttons.py (Reflect and Done it)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import discord
from discord.ext import commands

from coach import journey
from coach.clock import to_unix
from coach.errors import BadInput
from coach.lesson_posts import DEFAULT_TIME, DEFAULT_WEEKDAY, lesson_due, next_lesson_at
from coach.lessons import QUICK_REFERENCE, YOUR_TURN, Lesson
from coach.rounds import nonce_for
from coach.schedule import WEEKDAY_LONG, format_time, parse_time
from coach.storage import Storage
from coach.text import (
    EMBED_DESCRIPTION_MAX,
    EMBED_FIELD_NAME_MAX,
    EMBED_FIELD_VALUE_MAX,
    EMBED_FOOTER_MAX,
    EMBED_TITLE_MAX,
    EMBED_TOTAL_MAX,
    cut,
    cut_block,
    escape_markdown,
    ts,
)
from cogs.admin import missing_permissions
from cogs.common import reply, stateless
from cogs.lesson_buttons import lesson_view
from cogs.pages import setup_pages
from cogs.rounds import PostFailed, classify

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.lessons")
CHUNK = 200
IN_FLIGHT = 16
COLOUR = discord.Colour.from_rgb(155, 89, 182)
ERROR_TEXT = {
    "missing_permission": "I couldn't post the lesson in <#{channel}>: I'm missing permission there. Give me View "
                          "Channel, Send Messages and Embed Links in that channel, or pick another with "
                          "`/coach lessons`.",
    "channel_deleted": "The lesson channel <#{channel}> is gone, so the lesson wasn't posted. Pick a new one with "
                       "`/coach lessons`.",
    "lesson_missing": "A lesson I was about to post is no longer in the library; the next one goes out on schedule.",
    "discord_error": "Discord had trouble when I posted the lesson in <#{channel}>; I'll try again at the next "
                     "lesson time.",
}


def lesson_error_sentence(code: str, channel_id: int) -> str:
    return ERROR_TEXT.get(code.split(":")[0], ERROR_TEXT["discord_error"]).format(channel=channel_id)


def lesson_embed(lesson: Lesson, *, full: bool = False, author: str | None = None) -> discord.Embed:
    """The post: title, excerpt, "Your Turn" (with its outcome), the Reflect question as footer. `full` (for
    /lesson show) adds the Quick Reference and FAQ when there is room. Always within Discord's limits."""
    title = cut(lesson.title, EMBED_TITLE_MAX)
    exercise = f"{lesson.your_turn}\n\n{lesson.outcome_line}" if lesson.outcome else lesson.your_turn
    your_turn = cut_block(exercise, EMBED_FIELD_VALUE_MAX)
    footer = cut(f"Reflect: {lesson.reflect}", EMBED_FOOTER_MAX)
    author = cut(author, EMBED_TITLE_MAX) if author else None
    room = EMBED_TOTAL_MAX - len(title) - len(YOUR_TURN) - len(your_turn) - len(footer) - len(author or "")
    extras: list[tuple[str, str]] = []
    if full:
        if lesson.quick_reference:
            extras.append((QUICK_REFERENCE, "\n".join(f"• {line}" for line in lesson.quick_reference)))
        extras += [(cut(q, EMBED_FIELD_NAME_MAX), a) for q, a in lesson.faq]
        while extras and sum(len(n) + len(v) for n, v in extras) > room - min(len(lesson.excerpt), 1000):
            extras.pop()  # the excerpt comes first; hand-written lessons are checked at load to fit whole
        room -= sum(len(n) + len(v) for n, v in extras)
    embed = discord.Embed(title=title, description=cut_block(lesson.excerpt, min(EMBED_DESCRIPTION_MAX, room)),
                          colour=COLOUR)
    if author:
        embed.set_author(name=author)
    embed.add_field(name=YOUR_TURN, value=your_turn, inline=False)
    for name, value in extras:
        embed.add_field(name=name, value=cut_block(value, EMBED_FIELD_VALUE_MAX), inline=False)
    embed.set_footer(text=footer)
    return embed


class Lessons(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        self._resume_claims: list[Storage.LessonPost] = []

    async def cog_load(self) -> None:
        setup_pages(self.bot)
        since = to_unix(self.bot.clock.now() - self.bot.grace)
        # Posts claimed but not confirmed when the last process stopped: post them (same nonce).
        self._resume_claims = await self.storage.unfinished_lesson_claims(since)

    @property
    def storage(self) -> Storage:
        return self.bot.storage

    # ------------------------------------------------------------------ /coach lessons (called from cogs/admin.py)

    async def configure(self, interaction: discord.Interaction, channel: discord.abc.GuildChannel | None,
                        weekday: int | None, time: str | None, then: str | None = None) -> None:
        guild = interaction.guild
        assert guild is not None
        existing = await self.storage.get_lesson_schedule(guild.id)
        following = self.track_named(then) if then is not None else None  # checked before anything is stored
        if channel is None and existing is None:
            raise BadInput("Pick the channel where lessons should be posted: `/coach lessons channel:#lessons`.")
        if existing is not None and channel is None and weekday is None and time is None:
            await self.choose_next_track(guild.id, following)
            await reply(interaction, "\n".join(await self.plan_lines(guild.id)))  # only the next track changed
            return
        channel_id = channel.id if channel is not None else existing.channel_id  # type: ignore[union-attr]
        at = parse_time(time if time is not None else existing.time_local if existing else DEFAULT_TIME)
        day = weekday if weekday is not None else existing.weekday if existing else DEFAULT_WEEKDAY
        live, me = guild.get_channel(channel_id), guild.me
        if live is None or me is None:
            raise BadInput(f"I can't see <#{channel_id}>. Pick a text channel I can read.")
        missing = missing_permissions(live, me)
        if missing:
            raise BadInput(f"I can't post lessons in <#{channel_id}>: I'm missing **{', '.join(missing)}** there. "
                           "Give me those in the channel's permissions, then run `/coach lessons` again.")
        checkin = await self.storage.get_guild(guild.id)
        tz = ZoneInfo(checkin.timezone if checkin else "UTC")
        nxt = next_lesson_at(self.bot.clock.now(), at, tz, day)
        new = await self.storage.set_lesson_schedule(
            guild_id=guild.id, channel_id=channel_id, weekday=day, time_local=format_time(at), timezone=tz.key,
            next_due=to_unix(nxt), now=self.bot.clock.now(),
        )
        await self.choose_next_track(guild.id, following)
        plan = await self.plan_lines(guild.id)
        lines = [f"{'All set' if new else 'Updated'}: lessons are posted in <#{channel_id}> every "
                 f"**{WEEKDAY_LONG[day]}** at **{format_time(at)}** ({tz.key}).",
                 f"Next one: {ts(nxt)} ({ts(nxt, 'R')}): {plan[0].removeprefix('Next lesson: ')}", *plan[1:]]
        if checkin is None:
            lines.append("That's UTC because there's no check-in set up yet; after `/coach setup` picks your "
                         "time zone, run `/coach lessons` again to follow it.")
        elif checkin.paused:
            lines.append("Scheduled posts are paused right now; `/coach resume` starts them again.")
        await reply(interaction, "\n".join(lines))

    def track_named(self, name: str) -> str:
        """The track `then:` names (by name or title); BadInput listing the tracks otherwise."""
        library = self.bot.lessons
        track = next((t for t in library.track_info if name.strip() in (t.name, t.title)), None)
        if track is None:
            known = ", ".join(f"`{t.name}` ({t.title})" for t in library.track_info)
            raise BadInput(f"There's no track called `{cut(name.replace('`', ''), 40)}`. Pick one of: {known}.")
        return track.name

    async def choose_next_track(self, guild_id: int, track: str | None) -> None:
        if track is not None:  # the default (Core again) is stored as no choice
            chosen = None if track == self.bot.lessons.first_track else track
            await self.storage.set_next_track(guild_id, chosen, self.bot.clock.now())

    async def plan_lines(self, guild_id: int) -> list[str]:
        """What the server reads now and what follows when its track ends (for /coach lessons and /coach show)."""
        library = self.bot.lessons
        posted = await self.storage.posted_lesson_ids(guild_id)
        chosen = await self.storage.get_next_track(guild_id)
        upcoming = journey.next_lesson_for_server(library, posted, chosen)
        track = library.track_of(upcoming.track)
        lessons = library.track(track.name)
        place = next(i for i, lesson in enumerate(lessons, 1) if lesson.id == upcoming.id)
        following = library.track_of(journey.after_track(library, track.name, chosen))
        how = "your choice" if chosen and following.name == chosen else "the default"
        return [f"Next lesson: **{escape_markdown(cut(upcoming.title, 100))}**, {place} of {len(lessons)} in "
                f"**{track.title}**.",
                f"When {track.title} ends: **{following.title}** ({how}; change it with `/coach lessons then:`)."]

    async def upcoming(self, guild_id: int) -> Lesson:
        """The lesson this server gets next (coach/journey.py decides; renamed or removed lessons are skipped)."""
        return journey.next_lesson_for_server(self.bot.lessons, await self.storage.posted_lesson_ids(guild_id),
                                              await self.storage.get_next_track(guild_id))

    # ------------------------------------------------------------------ scheduled posting

    async def run_due(self) -> int:
        """Post every due lesson once, in chunks. Returns how many were posted."""
        now = self.bot.clock.now()
        claims, self._resume_claims = self._resume_claims, []
        posted = 0
        for claimed in claims:
            posted += await self._deliver_safely(claimed)
        while True:
            due = await self.storage.due_lesson_schedules(to_unix(now), CHUNK)
            if not due:
                break
            posted += sum(await asyncio.gather(*(self._take(schedule, now) for schedule in due)))
            if len(due) < CHUNK:
                break
        return posted

    async def _take(self, schedule: Storage.LessonSchedule, now: datetime) -> int:
        assert schedule.next_due is not None
        decision = lesson_due(schedule, now, self.bot.grace)
        advance = (schedule.next_due, to_unix(decision.next_due))
        if not decision.post:
            if await self.storage.advance_lesson_schedule(schedule.guild_id, *advance):
                log.warning("guild %s: lesson for %s missed by more than the grace window; skipped",
                            schedule.guild_id, decision.local_date)
            return 0
        lesson = await self.upcoming(schedule.guild_id)
        claimed = await self.storage.claim_lesson_post(
            guild_id=schedule.guild_id, local_date=decision.local_date.isoformat(), lesson_id=lesson.id,
            scheduled_at=to_unix(decision.scheduled_at), channel_id=schedule.channel_id, late=decision.late,
            now=now, advance=advance,
        )
        return 0 if claimed is None else await self._deliver_safely(claimed)

    async def _deliver_safely(self, post: Storage.LessonPost) -> int:
        try:
            await self.deliver(post)
            return 1
        except PostFailed as exc:
            log.warning("guild %s: lesson %s not posted: %s", post.guild_id, post.lesson_id, exc.code)
            await self.storage.mark_lesson_failed(post.id, exc.code, self.bot.clock.now())
            return 0

    async def deliver(self, post: Storage.LessonPost) -> discord.Message:
        lesson = self.bot.lessons.get(post.lesson_id)
        if lesson is None:
            raise PostFailed("lesson_missing")
        channel = self.bot.guild_channel(post.guild_id, post.channel_id)
        if not isinstance(channel, discord.abc.GuildChannel) or not isinstance(channel, discord.abc.Messageable):
            raise PostFailed("channel_deleted")
        if channel.guild.me is None or missing_permissions(channel, channel.guild.me):
            raise PostFailed("missing_permission")  # known before asking: no 403 toward Discord's ban counter
        async with self._in_flight:
            try:
                message = await channel.send(embed=lesson_embed(lesson), view=stateless(lesson_view(lesson.id)),
                                             nonce=nonce_for("lesson", post.id))
            except discord.HTTPException as exc:
                raise PostFailed(classify(exc)) from exc
        await self.storage.mark_lesson_posted(post.id, message.id, self.bot.clock.now())
        return message



async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Lessons(bot))
