"""Pagination with Previous/Next buttons that keep working after a restart.

The custom_id carries everything needed to draw a page again: `bounce:pg:<kind>:<args…>:<page>:<p|n>`.
Each paged list registers a factory for its kind. A press is refused, privately and with nothing changed, in a
server other than the list's own, and by anyone but its owner when the list has one (Discord scopes components
to their message today; this holds even if it did not).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord

from coach.errors import NotAllowed, NotFound
from coach.text import CUSTOM_ID_MAX
from cogs.common import bot_of, guarded, reply

if TYPE_CHECKING:
    from bot import BounceBot

PAGE_SIZE = 10
FACTORIES: dict[str, Callable[[BounceBot, list[str]], Pager]] = {}


def register(kind: str) -> Callable[[Callable[[BounceBot, list[str]], Pager]], Callable[[BounceBot, list[str]], Pager]]:
    def deco(factory: Callable[[BounceBot, list[str]], Pager]) -> Callable[[BounceBot, list[str]], Pager]:
        FACTORIES[kind] = factory
        return factory

    return deco


class Pager:
    """Subclasses draw one page; this class handles buttons, who may press them, and sending.

    `guild_id` is the server the list belongs to; `owner_id` the only member who may page it (None: anyone in
    that server who can see it)."""

    def __init__(self, key: str, *, guild_id: int, owner_id: int | None = None) -> None:
        if not re.fullmatch(r"[a-z]+(?::[-\w]+)*", key):
            raise ValueError(f"bad pager key {key!r}")
        self.key, self.guild_id, self.owner_id = key, guild_id, owner_id

    async def render(self, page: int) -> tuple[discord.Embed, int]:
        raise NotImplementedError

    def check(self, interaction: discord.Interaction) -> None:
        """Raise NotAllowed unless this press comes from the list's server and, if it has one, its owner."""
        if interaction.guild_id != self.guild_id:
            raise NotAllowed("These buttons belong to a list from another server; run the command here instead.")
        if self.owner_id is not None and interaction.user.id != self.owner_id:
            raise NotAllowed("These buttons belong to someone else's list; run the command yourself.")

    def view(self, page: int, pages: int) -> discord.ui.View | None:
        if pages <= 1:
            return None
        view = discord.ui.View(timeout=None)
        view.add_item(PageButton(self.key, max(page - 1, 0), "p", disabled=page <= 0))
        view.add_item(PageButton(self.key, min(page + 1, pages - 1), "n", disabled=page >= pages - 1))
        return view

    async def draw(self, page: int) -> tuple[discord.Embed, discord.ui.View | None]:
        embed, pages = await self.render(page)
        page = min(max(page, 0), pages - 1)
        return embed, self.view(page, pages)

    async def send(self, interaction: discord.Interaction, page: int = 0, *, ephemeral: bool = True) -> None:
        embed, view = await self.draw(page)
        await reply(interaction, embed=embed, view=view, ephemeral=ephemeral)


class PageButton(discord.ui.DynamicItem[discord.ui.Button],
                 template=r"bounce:pg:(?P<key>[a-z]+(?::[-\w]+)*):(?P<page>\d+):(?P<dir>[pn])"):
    def __init__(self, key: str, page: int, direction: str, *, disabled: bool = False) -> None:
        custom_id = f"bounce:pg:{key}:{page}:{direction}"
        if len(custom_id) > CUSTOM_ID_MAX:
            raise ValueError("pager custom_id too long")
        super().__init__(discord.ui.Button(
            label="Previous" if direction == "p" else "Next", emoji="◀️" if direction == "p" else "▶️",
            style=discord.ButtonStyle.secondary, custom_id=custom_id, disabled=disabled,
        ))
        self.key, self.page = key, page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any):  # noqa: ANN206
        return cls(match["key"], int(match["page"]), match["dir"])

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        kind, *args = self.key.split(":")
        factory = FACTORIES.get(kind)
        if factory is None:
            raise NotFound("This list can't be paged any more; run the command again.")
        pager = factory(bot_of(interaction), args)
        pager.check(interaction)
        embed, view = await pager.draw(self.page)
        await interaction.response.edit_message(embed=embed, view=view)


def setup_pages(bot: BounceBot) -> None:
    bot.add_dynamic_items(PageButton)
