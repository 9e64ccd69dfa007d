"""Lessons: the weekly lesson post (paced, exactly once) and /coach lessons. Members' side: cogs/lesson_reading.py
(/lesson commands) and cogs/lesson_buttons.py (Reflect and Done it)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import discord
from discord.ext import commands

from coach import journey
from coach.clock import from_unix, to_unix
from coach.errors import BadInput
from coach.lesson_posts import DEFAULT_TIME, DEFAULT_WEEKDAY, next_lesson_at, take_due
from coach.lessons import QUICK_REFERENCE, YOUR_TURN, Lesson
from coach.outbox import Fail, Job, Sent, Skip, TakeReport
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
from cogs.outbox import find_in_history, has_custom_id_prefix, postable_channel
from cogs.pages import setup_pages

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.lessons")
CHUNK = 200
IN_FLIGHT = 16
COLOUR = discord.Colour.from_rgb(155, 89, 182)
ERROR_TEXT = {
    "missing_permission": "I couldn't post the lesson in <#{channel}>: I'm missing permission there. Give me View "
                          "Channel, Send Messages, Embed Links and Read Message History in that channel, or pick another with "
                          "`/coach lessons`.",
    "channel_deleted": "The lesson channel <#{channel}> is gone, so the lesson wasn't posted. Pick a new one with "
                       "`/coach lessons`.",
    "lesson_missing": "A lesson I was about to post is no longer in the library; the next one goes out on schedule.",
    "gave_up": "Discord or the server was unreachable for the whole time the lesson could still go out, so "
               "<#{channel}> didn't get it. Nothing to fix on your side; the next one comes as scheduled.",
    "broken_schedule": "I couldn't work out the lesson schedule any more (its time zone may have been retired). "
                       "Run `/coach lessons` again to set it.",
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

    async def cog_load(self) -> None:
        setup_pages(self.bot)
        self.bot.outbox.register("lesson", self.deliver, take=self.take, find=self.find_posted, in_flight=IN_FLIGHT)

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

    # ------------------------------------------------------------------ scheduled posting (through the outbox)

    async def take(self, now: datetime) -> TakeReport:
        return await take_due(self.storage, now, self.bot.grace, self.next_lesson_id)

    async def next_lesson_id(self, guild_id: int) -> str:
        return (await self.upcoming(guild_id)).id

    async def deliver(self, job: Job) -> Sent:
        post = await self.storage.get_lesson_post(job.ref_id)
        if post is None:
            raise Skip("gone")
        lesson = self.bot.lessons.get(post.lesson_id)
        if lesson is None:
            raise Fail("lesson_missing")
        channel = postable_channel(self.bot, post.guild_id, post.channel_id)
        message = await channel.send(embed=lesson_embed(lesson), view=stateless(lesson_view(lesson.id)),
                                     nonce=nonce_for("lesson", post.id))
        return Sent(message.id, message.channel.id)

    async def find_posted(self, job: Job) -> Sent | None:
        """Past Discord's nonce window: did an earlier attempt post this lesson? (Its Reflect button names it.)"""
        post = await self.storage.get_lesson_post(job.ref_id)
        if post is None or job.first_try_at is None or self.bot.user is None:
            return None
        channel = postable_channel(self.bot, post.guild_id, post.channel_id)
        return await find_in_history(channel, self.bot.user.id, from_unix(job.first_try_at),
                                     lambda m: has_custom_id_prefix(m, f"bounce:lr:{post.lesson_id}"))


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Lessons(bot))
