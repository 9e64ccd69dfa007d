"""Lessons: the weekly lesson post (paced, exactly once), its Reflect button and form, /lesson show|list|reflect."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import discord
from discord import app_commands
from discord.ext import commands

from coach import lesson_posts, voice
from coach.clock import from_unix, to_unix
from coach.errors import BadInput, NotFound
from coach.lesson_posts import (
    DEFAULT_TIME,
    DEFAULT_WEEKDAY,
    DEPTH_POINTS,
    REFLECTION_MAX,
    next_lesson_at,
    take_due,
)
from coach.lessons import YOUR_TURN, Lesson
from coach.outbox import Fail, Job, Sent, Skip, TakeReport
from coach.rounds import nonce_for
from coach.schedule import WEEKDAY_LONG, format_time, parse_time
from coach.storage import Storage
from coach.text import (
    EMBED_DESCRIPTION_MAX,
    EMBED_FIELD_VALUE_MAX,
    EMBED_FOOTER_MAX,
    EMBED_TITLE_MAX,
    EMBED_TOTAL_MAX,
    MODAL_TITLE_MAX,
    cut,
    cut_block,
    escape_markdown,
    safe_name,
    ts,
)
from cogs.admin import missing_permissions
from cogs.common import bot_of, guarded, member_name, orphaned_form, reply, stateless
from cogs.outbox import find_in_history, has_custom_id_prefix, postable_channel
from cogs.pages import PAGE_SIZE, Pager, register, setup_pages

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.lessons")
CHUNK = 200
IN_FLIGHT = 16
COLOUR = discord.Colour.from_rgb(155, 89, 182)
_ID = r"[a-z0-9][a-z0-9_-]{0,63}"
MODAL_ID = re.compile(rf"bounce:rf:(?P<lesson>{_ID}):\d+")
ERROR_TEXT = {
    "missing_permission": "I couldn't post the lesson in <#{channel}>: I'm missing permission there. Give me View "
                          "Channel, Send Messages and Embed Links in that channel, or pick another with "
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


def lesson_embed(lesson: Lesson) -> discord.Embed:
    """The post: title, excerpt, "Your Turn", the Reflect question as footer; always within Discord's limits."""
    title = cut(lesson.title, EMBED_TITLE_MAX)
    your_turn = cut_block(lesson.your_turn, EMBED_FIELD_VALUE_MAX)
    footer = cut(f"Reflect: {lesson.reflect}", EMBED_FOOTER_MAX)
    room = EMBED_TOTAL_MAX - len(title) - len(YOUR_TURN) - len(your_turn) - len(footer)
    embed = discord.Embed(title=title, description=cut_block(lesson.excerpt, min(EMBED_DESCRIPTION_MAX, room)),
                          colour=COLOUR)
    embed.add_field(name=YOUR_TURN, value=your_turn, inline=False)
    embed.set_footer(text=footer)
    return embed


def lesson_view(lesson_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ReflectButton(lesson_id))
    return view


class ReflectButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"bounce:lr:(?P<lesson>{_ID})"):
    """Reflect, on a lesson post (or /lesson show). The custom_id carries the lesson id."""

    def __init__(self, lesson_id: str) -> None:
        super().__init__(discord.ui.Button(label="Reflect", emoji="💭", style=discord.ButtonStyle.primary,
                                           custom_id=f"bounce:lr:{lesson_id}"))
        self.lesson_id = lesson_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any):  # noqa: ANN206
        return cls(match["lesson"])

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        cog: Lessons = bot_of(interaction).get_cog("Lessons")  # type: ignore[assignment]
        await cog.open_form(interaction, cog.find(self.lesson_id))


class ReflectForm(discord.ui.Modal):
    def __init__(self, cog: Lessons, lesson: Lesson, user_id: int, earlier: str | None) -> None:
        # The custom_id names the member: two members' open forms must never share one.
        super().__init__(title=cut(f"Reflect: {lesson.title}", MODAL_TITLE_MAX),
                         custom_id=f"bounce:rf:{lesson.id}:{user_id}", timeout=1800)
        self.cog, self.lesson = cog, lesson
        label = lesson.reflect_label
        self.answer = discord.ui.TextInput(
            label=label, style=discord.TextStyle.paragraph, custom_id="reflection", required=True,
            max_length=REFLECTION_MAX, default=earlier,
            placeholder=cut(lesson.reflect, 100) if label != lesson.reflect else "A few honest lines, your words.",
        )
        self.add_item(self.answer)

    @guarded
    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.save(interaction, self.lesson.id, self.answer.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:
        from cogs.common import report_error

        await report_error(interaction, error)


class Lessons(commands.Cog):
    lesson = app_commands.Group(name="lesson", description="Read the lessons and reflect on them.", guild_only=True)

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        setup_pages(self.bot)
        self.bot.add_dynamic_items(ReflectButton)
        self.bot.outbox.register("lesson", self.deliver, take=self.take, find=self.find_posted, in_flight=IN_FLIGHT)

    @property
    def storage(self) -> Storage:
        return self.bot.storage

    # ------------------------------------------------------------------ /coach lessons (called from cogs/admin.py)

    async def configure(self, interaction: discord.Interaction, channel: discord.abc.GuildChannel,
                        weekday: int | None, time: str | None) -> None:
        guild = interaction.guild
        assert guild is not None
        at = parse_time(time if time is not None else DEFAULT_TIME)
        day = DEFAULT_WEEKDAY if weekday is None else weekday
        live, me = guild.get_channel(channel.id), guild.me
        if live is None or me is None:
            raise BadInput(f"I can't see <#{channel.id}>. Pick a text channel I can read.")
        missing = missing_permissions(live, me)
        if missing:
            raise BadInput(f"I can't post lessons in <#{channel.id}>: I'm missing **{', '.join(missing)}** there. "
                           "Give me those in the channel's permissions, then run `/coach lessons` again.")
        checkin = await self.storage.get_guild(guild.id)
        tz = ZoneInfo(checkin.timezone if checkin else "UTC")
        nxt = next_lesson_at(self.bot.clock.now(), at, tz, day)
        new = await self.storage.set_lesson_schedule(
            guild_id=guild.id, channel_id=channel.id, weekday=day, time_local=format_time(at), timezone=tz.key,
            next_due=to_unix(nxt), now=self.bot.clock.now(),
        )
        latest = await self.storage.latest_lesson_post(guild.id)
        upcoming = self.bot.lessons.next_after(latest.lesson_id if latest else None)
        lines = [f"{'All set' if new else 'Updated'}: lessons are posted in <#{channel.id}> every "
                 f"**{WEEKDAY_LONG[day]}** at **{format_time(at)}** ({tz.key}).",
                 f"Next one: {ts(nxt)} ({ts(nxt, 'R')}): **{escape_markdown(cut(upcoming.title, 100))}**."]
        if checkin is None:
            lines.append("That's UTC because there's no check-in set up yet; after `/coach setup` picks your "
                         "time zone, run `/coach lessons` again to follow it.")
        elif checkin.paused:
            lines.append("Scheduled posts are paused right now; `/coach resume` starts them again.")
        await reply(interaction, "\n".join(lines))

    # ------------------------------------------------------------------ scheduled posting

    async def take(self, now: datetime) -> TakeReport:
        return await take_due(self.storage, now, self.bot.grace, self.next_lesson_id)

    async def next_lesson_id(self, guild_id: int) -> str:
        latest = await self.storage.latest_lesson_post(guild_id)
        return self.bot.lessons.next_after(latest.lesson_id if latest else None).id

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

    # ------------------------------------------------------------------ reading

    def find(self, lesson_id: str) -> Lesson:
        lesson = self.bot.lessons.get(lesson_id)
        if lesson is None:
            hits = self.bot.lessons.search(lesson_id, 2)
            if len(hits) == 1 and lesson_id.strip():
                return hits[0]
            shown = cut(lesson_id.replace("`", "'"), 40) or "(empty)"
            raise NotFound(f"I don't know a lesson called `{shown}`. `/lesson list` shows every lesson with its id.")
        return lesson

    async def latest(self, guild_id: int) -> Lesson | None:
        post = await self.storage.latest_lesson_post(guild_id)
        return self.bot.lessons.get(post.lesson_id) if post else None

    async def _answer(self, interaction: discord.Interaction, content: str | None = None, **kwargs: Any) -> None:
        """Reply privately; an admin also hears, once, about a lesson post that failed."""
        if interaction.guild_id is not None and interaction.permissions.manage_guild:
            pending = await self.storage.take_lesson_error(interaction.guild_id)
            if pending:
                content = (f"{content}\n\n" if content else "") + "⚠️ " + lesson_error_sentence(*pending)
        await reply(interaction, content, **kwargs)

    @lesson.command(name="show", description="Read a lesson (default: the latest one posted here).")
    @app_commands.rename(lesson_id="id")
    @app_commands.describe(lesson_id="Which lesson: start typing its title")
    async def show(self, interaction: discord.Interaction,
                   lesson_id: app_commands.Range[str, 1, 100] | None = None) -> None:
        assert interaction.guild_id is not None
        if lesson_id is not None:
            lesson = self.find(lesson_id)
        else:
            lesson = await self.latest(interaction.guild_id) or self.bot.lessons.next_after(None)
        reflected = await self.storage.get_reflection(interaction.guild_id, interaction.user.id, lesson.id)
        note = ("You reflected on this one already; **Reflect** lets you edit what you wrote." if reflected else
                f"Tap **Reflect** to answer its question privately (+{DEPTH_POINTS} depth points the first time).")
        await self._answer(interaction, note, embed=lesson_embed(lesson), view=lesson_view(lesson.id))

    @lesson.command(name="list", description="Every lesson, with the ones you reflected on marked.")
    async def list_(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        embed, view = await LessonPager(self.bot, interaction.guild_id, interaction.user.id).draw(0)
        await self._answer(interaction, embed=embed, view=view)

    @lesson.command(name="reflect", description="Reflect on a lesson (default: the latest one posted here).")
    @app_commands.rename(lesson_id="id")
    @app_commands.describe(lesson_id="Which lesson: start typing its title")
    async def reflect(self, interaction: discord.Interaction,
                      lesson_id: app_commands.Range[str, 1, 100] | None = None) -> None:
        assert interaction.guild_id is not None
        if lesson_id is None:
            post = await self.storage.latest_lesson_post(interaction.guild_id)
            if post is None:
                first = self.bot.lessons.next_after(None)
                raise NotFound(
                    f"No lesson has been posted here yet. The first one is **{escape_markdown(first.title)}** "
                    f"(`{first.id}`): read it with `/lesson show id:{first.id}`, then reflect on it with "
                    f"`/lesson reflect id:{first.id}`."
                )
            lesson_id = post.lesson_id
        await self.open_form(interaction, self.find(lesson_id))

    @show.autocomplete("lesson_id")
    @reflect.autocomplete("lesson_id")
    async def _lesson_ac(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=cut(f"{lesson.order}. {lesson.title}", 100), value=lesson.id)
                for lesson in self.bot.lessons.search(current or "", 25)]

    # ------------------------------------------------------------------ reflecting

    async def open_form(self, interaction: discord.Interaction, lesson: Lesson) -> None:
        if interaction.guild_id is None:
            raise NotFound("Reflections belong to a server; use the Reflect button or `/lesson reflect` there.")
        earlier = await self.storage.get_reflection(interaction.guild_id, interaction.user.id, lesson.id)
        await interaction.response.send_modal(
            ReflectForm(self, lesson, interaction.user.id, earlier.body if earlier else None))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A form opened before a restart has no live Modal object any more: take its submit here."""
        found = orphaned_form(interaction, MODAL_ID)
        if found is not None:
            match, values = found
            await guarded(self.save)(interaction, match["lesson"], values.get("reflection"))

    async def save(self, interaction: discord.Interaction, lesson_id: str, text: str | None) -> None:
        guild_id, user = interaction.guild_id, interaction.user
        lesson = self.bot.lessons.get(lesson_id)
        if guild_id is None or lesson is None:
            raise NotFound("That lesson isn't in the library any more, so nothing was saved. "
                           "`/lesson list` shows the current ones.")
        done = await lesson_posts.reflect(self.storage, guild_id=guild_id, user_id=user.id,
                                          display_name=member_name(user), lesson_id=lesson.id, text=text,
                                          now=self.bot.clock.now())
        who = safe_name(member_name(user))
        server = safe_name(interaction.guild.name if interaction.guild else "")
        title = escape_markdown(cut(lesson.title, 100))
        if done.awarded:
            lines = [await voice.say(self.storage, self.bot.prompts, self.bot.rng, "lesson_reflected",
                                     guild_id=guild_id, user_id=user.id, member=who, server=server)]
        elif done.created:
            lines = [f"Saved your reflection on **{title}**. The depth points for this lesson were already yours."]
        else:
            lines = [f"Updated your reflection on **{title}**. Edits don't earn more depth points: "
                     f"the +{DEPTH_POINTS} came with your first one."]
        project = await self.storage.latest_active_project(guild_id, user.id)
        if project is not None:
            lines.append(await voice.say(self.storage, self.bot.prompts, self.bot.rng, "lesson_apply",
                                         guild_id=guild_id, user_id=user.id, member=who, server=server,
                                                project=escape_markdown(cut(project.name, 80))))
        lines.append(f"Only you can see what you wrote. Your depth points here: **{done.depth_points}**.")
        await self._answer(interaction, "\n".join(lines))


class LessonPager(Pager):
    """/lesson list: every lesson in track order; ✅ marks the ones this member reflected on."""

    def __init__(self, bot: BounceBot, guild_id: int, user_id: int) -> None:
        super().__init__(key=f"ls:{guild_id}:{user_id}")
        self.bot, self.guild_id, self.user_id = bot, guild_id, user_id

    async def allowed(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    async def render(self, page: int) -> tuple[discord.Embed, int]:
        lessons = self.bot.lessons.lessons
        pages = max(1, -(-len(lessons) // PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        reflected = await self.bot.storage.reflected_lesson_ids(self.guild_id, self.user_id)
        latest = await self.bot.storage.latest_lesson_post(self.guild_id)
        lines = []
        for lesson in lessons[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]:
            mark = "✅" if lesson.id in reflected else "▫️"
            line = f"{mark} **{escape_markdown(cut(lesson.title, 100))}** · `{lesson.id}`"
            if latest is not None and latest.lesson_id == lesson.id:
                line += " · latest here"
            lines.append(line)
        embed = discord.Embed(title="Lessons", colour=COLOUR,
                              description="\n".join(lines) or "No lessons are loaded right now.")
        done = sum(1 for lesson in lessons if lesson.id in reflected)
        embed.set_footer(text=f"✅ reflected: {done} of {len(lessons)} · /lesson show id:… to read one · "
                              f"page {page + 1}/{pages}")
        return embed, pages


@register("ls")
def _lesson_pager(bot: BounceBot, args: list[str]) -> Pager:
    return LessonPager(bot, int(args[0]), int(args[1]))


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Lessons(bot))
