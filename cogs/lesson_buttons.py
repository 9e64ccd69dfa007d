"""What a member does with a lesson: the Reflect and Done it buttons (on posts and /lesson show), the reflection
form, and the answers to both. Buttons are stateless (the custom_id carries the lesson id), so they keep working
after a restart; /lesson reflect and /lesson done (cogs/lesson_reading.py) come here too."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from coach import journey, lesson_posts, voice
from coach.errors import NotFound
from coach.lesson_posts import DEPTH_POINTS, REFLECTION_MAX
from coach.lessons import Lesson
from coach.text import MODAL_TITLE_MAX, cut, escape_markdown, safe_name, safe_title
from cogs.common import bot_of, guarded, member_name, orphaned_form, reply

if TYPE_CHECKING:
    from bot import BounceBot

_ID = r"[a-z0-9][a-z0-9_-]{0,63}"
MODAL_ID = re.compile(rf"bounce:rf:(?P<lesson>{_ID}):\d+")


def lesson_view(lesson_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ReflectButton(lesson_id))
    view.add_item(DoneButton(lesson_id))
    return view


async def answer(interaction: discord.Interaction, content: str | None = None, **kwargs: Any) -> None:
    """Reply privately; an admin also hears, once, about a lesson post that failed."""
    from cogs.lessons import lesson_error_sentence

    storage = bot_of(interaction).storage
    if interaction.guild_id is not None and interaction.permissions.manage_guild:
        pending = await storage.take_lesson_error(interaction.guild_id)
        if pending:
            content = (f"{content}\n\n" if content else "") + "⚠️ " + lesson_error_sentence(*pending)
    await reply(interaction, content, **kwargs)


def find(bot: BounceBot, lesson_id: str) -> Lesson:
    """A lesson by id, or by a title/id fragment that matches exactly one."""
    lesson = bot.lessons.get(lesson_id)
    if lesson is None:
        hits = bot.lessons.search(lesson_id, 2)
        if len(hits) == 1 and lesson_id.strip():
            return hits[0]
        shown = cut(lesson_id.replace("`", "'"), 40) or "(empty)"
        raise NotFound(f"I don't know a lesson called `{shown}`. `/lesson list` shows every lesson with its id.")
    return lesson


async def readable(interaction: discord.Interaction, lesson: Lesson) -> Lesson:
    """The lesson, when this member may read it here; NotAllowed saying what opens it otherwise."""
    bot = bot_of(interaction)
    if interaction.guild_id is None:
        raise NotFound("Lessons belong to a server; use the buttons or `/lesson` commands there.")
    depth = await bot.storage.depth_points(interaction.guild_id, interaction.user.id)
    if not journey.unlocked(bot.lessons.track_of(lesson.track), depth):
        posted = await bot.storage.posted_lesson_ids(interaction.guild_id)
        journey.require_readable(bot.lessons, lesson, depth, posted)
    return lesson


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
        await open_form(interaction, find(bot_of(interaction), self.lesson_id))


class DoneButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"bounce:ld:(?P<lesson>{_ID})"):
    """Done it: the member did the lesson's Your Turn exercise (+1 depth point, once)."""

    def __init__(self, lesson_id: str) -> None:
        super().__init__(discord.ui.Button(label="Done it", emoji="✅", style=discord.ButtonStyle.secondary,
                                           custom_id=f"bounce:ld:{lesson_id}"))
        self.lesson_id = lesson_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any):  # noqa: ANN206
        return cls(match["lesson"])

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await mark_done(interaction, self.lesson_id)


class ReflectForm(discord.ui.Modal):
    def __init__(self, lesson: Lesson, user_id: int, earlier: str | None) -> None:
        # The custom_id names the member: two members' open forms must never share one.
        super().__init__(title=cut(f"Reflect: {lesson.title}", MODAL_TITLE_MAX),
                         custom_id=f"bounce:rf:{lesson.id}:{user_id}", timeout=1800)
        self.lesson = lesson
        label = lesson.reflect_label
        self.answer = discord.ui.TextInput(
            label=label, style=discord.TextStyle.paragraph, custom_id="reflection", required=True,
            max_length=REFLECTION_MAX, default=earlier,
            placeholder=cut(lesson.reflect, 100) if label != lesson.reflect else "A few honest lines, your words.",
        )
        self.add_item(self.answer)

    @guarded
    async def on_submit(self, interaction: discord.Interaction) -> None:
        await save(interaction, self.lesson.id, self.answer.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:
        from cogs.common import report_error

        await report_error(interaction, error)


async def open_form(interaction: discord.Interaction, lesson: Lesson) -> None:
    await readable(interaction, lesson)
    assert interaction.guild_id is not None
    earlier = await bot_of(interaction).storage.get_reflection(interaction.guild_id, interaction.user.id, lesson.id)
    await interaction.response.send_modal(ReflectForm(lesson, interaction.user.id, earlier.body if earlier else None))


async def save(interaction: discord.Interaction, lesson_id: str, text: str | None) -> None:
    bot, guild_id, user = bot_of(interaction), interaction.guild_id, interaction.user
    lesson = bot.lessons.get(lesson_id)
    if guild_id is None or lesson is None:
        raise NotFound("That lesson isn't in the library any more, so nothing was saved. "
                       "`/lesson list` shows the current ones.")
    done = await lesson_posts.reflect(bot.storage, guild_id=guild_id, user_id=user.id,
                                      display_name=member_name(user), lesson_id=lesson.id, text=text,
                                      now=bot.clock.now(), library=bot.lessons)
    who = safe_name(member_name(user))
    server = safe_name(interaction.guild.name if interaction.guild else "")
    title = escape_markdown(cut(lesson.title, 100))
    if done.awarded:
        lines = [await voice.say(bot.storage, bot.prompts, bot.rng, "lesson_reflected", guild_id=guild_id,
                                 user_id=user.id, member=who, server=server)]
    elif done.created:
        lines = [f"Saved your reflection on **{title}**. The depth points for this lesson were already yours."]
    else:
        lines = [f"Updated your reflection on **{title}**. Edits don't earn more depth points: "
                 f"the +{DEPTH_POINTS} came with your first one."]
    project = await bot.storage.latest_active_project(guild_id, user.id)
    if project is not None:
        lines.append(await voice.say(bot.storage, bot.prompts, bot.rng, "lesson_apply", guild_id=guild_id,
                                     user_id=user.id, member=who, server=server,
                                     project=safe_title(project.name)))
    lines.append(f"Only you can see what you wrote. Your depth points here: **{done.depth_points}**.")
    await answer(interaction, "\n".join(lines))


async def mark_done(interaction: discord.Interaction, lesson_id: str) -> None:
    bot, guild_id, user = bot_of(interaction), interaction.guild_id, interaction.user
    lesson = await readable(interaction, find(bot, lesson_id))
    assert guild_id is not None
    done = await journey.mark_done(bot.storage, bot.lessons, guild_id=guild_id, user_id=user.id,
                                   display_name=member_name(user), lesson_id=lesson.id, now=bot.clock.now())
    title = escape_markdown(cut(lesson.title, 100))
    if done.awarded:
        text = (f"✅ Marked **{title}** done: +{journey.EXERCISE_POINTS} depth point. Doing the exercise is where "
                f"the lesson actually lands. Your depth points here: **{done.depth_points}**.")
    else:
        text = (f"You marked **{title}** done already; that point is yours. Depth points here: "
                f"**{done.depth_points}**. Doing it again is still worth it, it just doesn't count twice.")
    await answer(interaction, text)


class LessonButtons(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ReflectButton, DoneButton)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A form opened before a restart has no live Modal object any more: take its submit here."""
        found = orphaned_form(interaction, MODAL_ID)
        if found is not None:
            match, values = found
            await guarded(save)(interaction, match["lesson"], values.get("reflection"))


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(LessonButtons(bot))
