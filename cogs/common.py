"""What every cog shares: answering an interaction safely, and turning errors into kind replies."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import discord
from discord import app_commands

from coach.errors import BounceError, NotAllowed
from coach.members import display_name

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.interactions")
NO_PINGS = discord.AllowedMentions.none()
P = ParamSpec("P")
T = TypeVar("T")


def bot_of(interaction: discord.Interaction) -> BounceBot:
    return interaction.client  # type: ignore[return-value]


async def reply(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    file: discord.File | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer the interaction, or follow up if it was already answered (deferred).

    A notice waiting for this member in this server (e.g. "your DMs were closed, so DM check-ins are off")
    is added once to their next private reply.
    """
    kwargs: dict[str, Any] = {"ephemeral": ephemeral, "allowed_mentions": NO_PINGS}
    if ephemeral and interaction.guild_id is not None:
        storage = getattr(interaction.client, "storage", None)
        notice = await storage.take_notice(interaction.guild_id, interaction.user.id) if storage else None
        if notice:
            content = f"{content}\n\n📌 {notice}" if content else f"📌 {notice}"
    if content is not None:
        kwargs["content"] = content
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    if file is not None:
        kwargs["file"] = file
    if interaction.response.is_done():
        await interaction.followup.send(**kwargs)
    else:
        await interaction.response.send_message(**kwargs)


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Domain errors: their sentence, ephemerally. Anything else: logged with a reference to quote."""
    original = getattr(error, "original", error)
    if isinstance(original, BounceError):
        text = original.message
    elif isinstance(error, app_commands.MissingPermissions):
        text = "This one is for admins: you need the **Manage Server** permission to use it."
    elif isinstance(error, app_commands.NoPrivateMessage):
        text = "This command works inside a server, not in DMs. Run it in the server you want it for."
    elif isinstance(error, app_commands.CheckFailure):
        text = "You can't use that here."
    else:
        ref = secrets.token_hex(3)
        log.error("unexpected error (ref %s) in %s", ref, _describe(interaction), exc_info=original)
        text = (f"Something went wrong on my side and nothing was saved. If it keeps happening, "
                f"tell an admin this reference: `{ref}`.")
    try:
        await reply(interaction, text)
    except discord.HTTPException:
        log.warning("could not tell %s about an error", _describe(interaction))


def _describe(interaction: discord.Interaction) -> str:
    what = interaction.command.qualified_name if interaction.command else (interaction.data or {}).get("custom_id")
    return f"interaction {what!r} in guild {interaction.guild_id}"


def guarded(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T | None]]:
    """For component and modal callbacks: route errors through report_error.

    The interaction is found among the arguments, so it works for methods and plain functions.
    """

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            return await func(*args, **kwargs)
        except Exception as exc:
            interaction = next(a for a in args if isinstance(a, discord.Interaction))
            await report_error(interaction, exc)
            return None

    return wrapper


def submitted_values(data: dict) -> dict[str, str]:
    """Text input values of a modal submit, by custom_id (action rows or label components)."""
    values: dict[str, str] = {}
    for row in data.get("components", []):
        for comp in row.get("components") or [row.get("component") or {}]:
            if "custom_id" in comp and isinstance(comp.get("value"), str):
                values[comp["custom_id"]] = comp["value"]
    return values


def orphaned_form(interaction: discord.Interaction, pattern: re.Pattern[str]
                  ) -> tuple[re.Match[str], dict[str, str]] | None:
    """A submit of one of our forms that has no live Modal object (it was opened before a restart): its custom_id
    match and values, for the cog to handle itself. None for anything else, or when discord.py will handle it."""
    if interaction.type is not discord.InteractionType.modal_submit:
        return None
    data = interaction.data or {}
    custom_id = data.get("custom_id", "")
    match = pattern.fullmatch(custom_id)
    if match is None or custom_id in interaction.client._connection._view_store._modals:  # live Modal
        return None
    return match, submitted_values(data)  # type: ignore[arg-type]


class Repeats:
    """Double submits answer as the first did: the same request (`key`) made again within `window` seconds
    gets the first one's result, or its error, without being done twice; a copy that arrives while the first
    is still running waits for it. Bounded: old entries go once there are `limit` of them."""

    def __init__(self, window: float = 5.0, limit: int = 10_000) -> None:
        self.window, self.limit = window, limit
        self._seen: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}

    async def once(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            return await asyncio.shield(seen[1])
        if len(self._seen) >= self.limit:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
            while len(self._seen) >= self.limit:
                del self._seen[next(iter(self._seen))]
        first: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        first.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, even if nobody waits
        self._seen[key] = (now, first)
        try:
            result = await make()
        except asyncio.CancelledError:
            first.cancel()
            self._seen.pop(key, None)
            raise
        except Exception as exc:
            first.set_exception(exc)
            raise
        first.set_result(result)
        return result


def member_name(user: discord.abc.User) -> str:
    """The member's one name in the server (coach.members.display_name): a Member from a server interaction
    carries its nickname; a User (a DM) only its global name and username."""
    return display_name(getattr(user, "nick", None), getattr(user, "global_name", None), user.name)


def stateless(view: discord.ui.View) -> discord.ui.View:
    """A view of DynamicItems only: they are dispatched by custom_id, so discord.py need not keep a View object
    per sent message in memory (10,000 round posts would otherwise be 10,000 stored views)."""
    view.stop()
    return view


CONFIRMS: dict[str, tuple[str, str, str, str, discord.ButtonStyle]] = {}


def confirmable(kind: str, *, cog: str, method: str, yes: str, no: str,
                style: discord.ButtonStyle = discord.ButtonStyle.success) -> None:
    """Register a confirm/cancel pair: `cog.method(interaction, owner_id, token, confirmed)` handles the click."""
    CONFIRMS[kind] = (cog, method, yes, no, style)


class ConfirmButton(discord.ui.DynamicItem[discord.ui.Button],
                    template=r"bounce:(?P<kind>[a-z]{2}):(?:(?P<guild>\d+):)?(?P<user>\d+):(?P<token>\d+):(?P<act>[yn])"):
    """Confirm or cancel something only its owner may decide in one server (new season, forget my data).
    Survives restarts: the custom_id carries the kind, the server, the owner and a token. A press from another
    server is refused before the handler runs (the handler checks the owner). Buttons sent before the server was
    part of the id (no guild) still work: their token is stored per server."""

    def __init__(self, kind: str, guild_id: int | None, user_id: int, token: int, act: str) -> None:
        _, _, yes, no, style = CONFIRMS[kind]
        scope = f"{guild_id}:" if guild_id is not None else ""
        super().__init__(discord.ui.Button(
            label=yes if act == "y" else no, style=style if act == "y" else discord.ButtonStyle.secondary,
            custom_id=f"bounce:{kind}:{scope}{user_id}:{token}:{act}",
        ))
        self.kind, self.guild_id, self.user_id, self.token, self.act = kind, guild_id, user_id, token, act

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any):  # noqa: ANN206
        if match["kind"] not in CONFIRMS:
            raise ValueError(f"unknown confirm kind {match['kind']!r}")
        guild = int(match["guild"]) if match["guild"] else None
        return cls(match["kind"], guild, int(match["user"]), int(match["token"]), match["act"])

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        if self.guild_id is not None and interaction.guild_id != self.guild_id:
            raise NotAllowed("This button belongs to another server; nothing changed. Run the command in the "
                             "server you mean.")
        cog_name, method, *_ = CONFIRMS[self.kind]
        handler = getattr(bot_of(interaction).get_cog(cog_name), method)
        await handler(interaction, self.user_id, self.token, self.act == "y")


def confirm_view(kind: str, guild_id: int, user_id: int, token: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmButton(kind, guild_id, user_id, token, "y"))
    view.add_item(ConfirmButton(kind, guild_id, user_id, token, "n"))
    return view
