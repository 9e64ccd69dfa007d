"""/lesson: a member reads lessons privately (show, next, tracks, list) and acts on them (reflect, done).

Which tracks are open to whom, and what comes next, is decided in coach/journey.py; the buttons and the answers
to reflecting and marking done live in cogs/lesson_buttons.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from coach import journey
from coach.errors import NotFound
from coach.lesson_posts import DEPTH_POINTS
from coach.lessons import Lesson
from coach.text import cut, escape_markdown
from cogs.lesson_buttons import answer, find, lesson_view, mark_done, open_form, readable
from cogs.lessons import COLOUR, lesson_embed
from cogs.pages import PAGE_SIZE, Pager, register, setup_pages

if TYPE_CHECKING:
    from bot import BounceBot


def heading(bot: BounceBot, lesson: Lesson) -> str:
    """"Finishing Craft · Borrowed Shape · 2 of 6": where the lesson sits in its track."""
    track = bot.lessons.track_of(lesson.track)
    lessons = bot.lessons.track(lesson.track)
    place = next(i for i, other in enumerate(lessons, 1) if other.id == lesson.id)
    module = track.module_title(lesson.module)
    return " · ".join(part for part in (track.title, module, f"{place} of {len(lessons)}") if part)


class LessonReading(commands.Cog):
    lesson = app_commands.Group(name="lesson", description="Read the lessons, reflect, and mark exercises done.",
                                guild_only=True)

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        setup_pages(self.bot)

    async def present(self, interaction: discord.Interaction, lesson: Lesson, intro: str | None = None) -> None:
        """Show a lesson privately, whole (Quick Reference and FAQ too), and remember the member opened it."""
        guild_id, user_id = interaction.guild_id, interaction.user.id
        assert guild_id is not None
        storage = self.bot.storage
        await storage.mark_lesson_read(guild_id, user_id, lesson.id, self.bot.clock.now())
        reflected = await storage.get_reflection(guild_id, user_id, lesson.id)
        done = lesson.id in await storage.done_lesson_ids(guild_id, user_id)
        notes = [intro] if intro else []
        notes.append("You reflected on this one already; **Reflect** lets you edit what you wrote." if reflected
                     else f"**Reflect** answers its question privately (+{DEPTH_POINTS} depth points the first time).")
        notes.append("Your Turn: done ✅" if done else
                     f"Did the Your Turn exercise? **Done it** marks it (+{journey.EXERCISE_POINTS} depth point).")
        await answer(interaction, "\n".join(notes), embed=lesson_embed(lesson, full=True,
                                                                        author=heading(self.bot, lesson)),
                     view=lesson_view(lesson.id))

    async def latest_or_first(self, guild_id: int) -> Lesson:
        for lesson_id in await self.bot.storage.posted_lesson_ids(guild_id, 20):
            lesson = self.bot.lessons.get(lesson_id)
            if lesson is not None:
                return lesson
        return journey.next_lesson_for_server(self.bot.lessons, [], None)

    @lesson.command(name="show", description="Read a lesson (default: the latest one posted here).")
    @app_commands.rename(lesson_id="id")
    @app_commands.describe(lesson_id="Which lesson: start typing its title")
    async def show(self, interaction: discord.Interaction,
                   lesson_id: app_commands.Range[str, 1, 100] | None = None) -> None:
        assert interaction.guild_id is not None
        if lesson_id is not None:
            lesson = find(self.bot, lesson_id)
        else:
            lesson = await self.latest_or_first(interaction.guild_id)
        await self.present(interaction, await readable(interaction, lesson))

    @lesson.command(name="next", description="Your next lesson to read, in the tracks open to you.")
    async def next_(self, interaction: discord.Interaction) -> None:
        guild_id, user_id = interaction.guild_id, interaction.user.id
        assert guild_id is not None
        storage, library = self.bot.storage, self.bot.lessons
        depth = await storage.depth_points(guild_id, user_id)
        seen = (await storage.read_lesson_ids(guild_id, user_id) | await storage.reflected_lesson_ids(guild_id, user_id)
                | await storage.done_lesson_ids(guild_id, user_id))
        posted = await storage.posted_lesson_ids(guild_id)
        lesson = journey.member_next(library, depth, seen, posted)
        if lesson is None:
            locked = [t for t in library.track_info if not journey.unlocked(t, depth)]
            text = "You've opened every lesson open to you here. "
            if locked:
                text += (f"**{locked[0].title}** opens at {locked[0].unlock} depth points (you have {depth}): "
                         "reflecting and marking exercises done gets you there.")
            else:
                text += "Every track is open to you; `/lesson list` has them all to revisit."
            await answer(interaction, text)
            return
        await self.present(interaction, lesson)

    @lesson.command(name="tracks", description="Every lesson track: open or locked, and how far you've come.")
    async def tracks(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        p = await journey.progress(self.bot.storage, self.bot.lessons, interaction.guild_id, interaction.user.id)
        embed = discord.Embed(title="Your lesson tracks", colour=COLOUR, description=journey.progress_lines(p))
        embed.add_field(name="Depth points", value=f"✨ **{p.depth:,}**", inline=False)
        embed.set_footer(text=f"+{DEPTH_POINTS} for a first reflection, +{journey.EXERCISE_POINTS} for each Your Turn "
                              "marked done · /lesson next opens your next lesson")
        await answer(interaction, embed=embed)

    @lesson.command(name="list", description="Every lesson, with the ones you reflected on or did marked.")
    async def list_(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        embed, view = await LessonPager(self.bot, interaction.guild_id, interaction.user.id).draw(0)
        await answer(interaction, embed=embed, view=view)

    async def posted_lesson(self, guild_id: int, command: str) -> str:
        """The latest lesson posted here (for /lesson reflect and done without an id)."""
        posted = await self.bot.storage.posted_lesson_ids(guild_id, 1)
        if not posted:
            first = journey.next_lesson_for_server(self.bot.lessons, [], None)
            raise NotFound(
                f"No lesson has been posted here yet. The first one is **{escape_markdown(first.title)}** "
                f"(`{first.id}`): read it with `/lesson show id:{first.id}`, then use "
                f"`/lesson {command} id:{first.id}`."
            )
        return posted[0]

    @lesson.command(name="reflect", description="Reflect on a lesson (default: the latest one posted here).")
    @app_commands.rename(lesson_id="id")
    @app_commands.describe(lesson_id="Which lesson: start typing its title")
    async def reflect(self, interaction: discord.Interaction,
                      lesson_id: app_commands.Range[str, 1, 100] | None = None) -> None:
        assert interaction.guild_id is not None
        lesson_id = lesson_id or await self.posted_lesson(interaction.guild_id, "reflect")
        await open_form(interaction, find(self.bot, lesson_id))

    @lesson.command(name="done", description="Mark a lesson's Your Turn exercise done (default: the latest posted).")
    @app_commands.rename(lesson_id="id")
    @app_commands.describe(lesson_id="Which lesson: start typing its title")
    async def done(self, interaction: discord.Interaction,
                   lesson_id: app_commands.Range[str, 1, 100] | None = None) -> None:
        assert interaction.guild_id is not None
        await mark_done(interaction, lesson_id or await self.posted_lesson(interaction.guild_id, "done"))

    @show.autocomplete("lesson_id")
    @reflect.autocomplete("lesson_id")
    @done.autocomplete("lesson_id")
    async def _lesson_ac(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=cut(f"{lesson.order}. {lesson.title}", 100), value=lesson.id)
                for lesson in self.bot.lessons.search(current or "", 25)]


class LessonPager(Pager):
    """/lesson list: every lesson in track order; 💭 reflected, ✅ exercise done, 🔒 not open to this member yet."""

    def __init__(self, bot: BounceBot, guild_id: int, user_id: int) -> None:
        super().__init__(key=f"ls:{guild_id}:{user_id}", guild_id=guild_id, owner_id=user_id)
        self.bot, self.guild_id, self.user_id = bot, guild_id, user_id

    async def render(self, page: int) -> tuple[discord.Embed, int]:
        storage, library = self.bot.storage, self.bot.lessons
        lessons = library.lessons
        pages = max(1, -(-len(lessons) // PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        reflected = await storage.reflected_lesson_ids(self.guild_id, self.user_id)
        done = await storage.done_lesson_ids(self.guild_id, self.user_id)
        depth = await storage.depth_points(self.guild_id, self.user_id)
        posted = await storage.posted_lesson_ids(self.guild_id)
        latest = next((lesson_id for lesson_id in posted if library.get(lesson_id)), None)
        lines, track = [], None
        for lesson in lessons[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]:
            if lesson.track != track:
                track = lesson.track
                info = library.track_of(track)
                lock = "" if journey.unlocked(info, depth) else f" · 🔒 opens at {info.unlock} depth"
                lines.append(f"__{escape_markdown(info.title)}__{lock}")
            marks = ("💭" if lesson.id in reflected else "") + ("✅" if lesson.id in done else "")
            if not journey.can_read(library, lesson, depth, posted):
                marks = "🔒"
            line = f"{marks or '▫️'} **{escape_markdown(cut(lesson.title, 100))}** · `{lesson.id}`"
            if lesson.id == latest:
                line += " · latest here"
            lines.append(line)
        embed = discord.Embed(title="Lessons", colour=COLOUR,
                              description="\n".join(lines) or "No lessons are loaded right now.")
        known = {lesson.id for lesson in lessons}
        embed.set_footer(text=f"💭 reflected: {len(reflected & known)} · ✅ done: {len(done & known)} · of "
                              f"{len(lessons)} · /lesson show id:… to read one · page {page + 1}/{pages}")
        return embed, pages


@register("ls")
def _lesson_pager(bot: BounceBot, args: list[str]) -> Pager:
    return LessonPager(bot, int(args[0]), int(args[1]))


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(LessonReading(bot))
