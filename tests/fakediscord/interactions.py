"""Interaction handles: what a test holds after the fake dispatched an INTERACTION_CREATE."""

from __future__ import annotations

import asyncio
import time
from typing import Any

EPHEMERAL = 1 << 6
LOADING = 1 << 7

# interaction types
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
# callback types
CB_MESSAGE, CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE, CB_UPDATE, CB_AUTOCOMPLETE, CB_MODAL = 4, 5, 6, 7, 8, 9


def _component_texts(components: Any) -> list[str]:
    out: list[str] = []
    if isinstance(components, list):
        for c in components:
            out.extend(_component_texts(c))
    elif isinstance(components, dict):
        if components.get("type") == 10 and components.get("content"):  # text display
            out.append(components["content"])
        for key in ("components", "component", "accessory"):
            if key in components:
                out.extend(_component_texts(components[key]))
    return out


def message_text(message: dict | None) -> str:
    """All words a user sees in a message: content, embed title/description/fields/footer, text displays."""
    if not message:
        return ""
    parts: list[str] = []
    if message.get("content"):
        parts.append(message["content"])
    for e in message.get("embeds") or []:
        for key in ("title", "description"):
            if e.get(key):
                parts.append(e[key])
        if (e.get("author") or {}).get("name"):
            parts.append(e["author"]["name"])
        for f in e.get("fields") or []:
            parts.extend(x for x in (f.get("name"), f.get("value")) if x)
        if (e.get("footer") or {}).get("text"):
            parts.append(e["footer"]["text"])
    parts.extend(_component_texts(message.get("components")))
    return "\n".join(parts)


def public(message: dict | None) -> dict | None:
    """A message without the fake's private keys (those starting with '_')."""
    if message is None:
        return None
    return {k: v for k, v in message.items() if not k.startswith("_")}


class InteractionHandle:
    """One dispatched interaction and everything the bot answered to it."""

    def __init__(self, fake: Any, payload: dict) -> None:
        self.fake = fake
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.guild_id: int | None = int(payload["guild_id"]) if payload.get("guild_id") else None
        self.channel_id: int | None = int(payload["channel_id"]) if payload.get("channel_id") else None
        user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
        self.user_id: int | None = int(user["id"]) if user else None
        self.created = time.monotonic()
        self.response_body: dict | None = None  # the callback body {"type", "data"}
        self.responded_at: float | None = None
        self.followups: list[dict] = []
        self.original: dict | None = None  # current @original message
        self.original_deleted = False
        self.source_message: dict | None = payload.get("message")  # component / modal-from-message source
        self.edits: list[dict] = []  # bodies of PATCH @original, in order
        self._response_fut: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ updates (called by the server)
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _set_response(self, body: dict) -> None:
        self.response_body = body
        self.responded_at = time.monotonic()
        if not self._response_fut.done():
            self._response_fut.set_result(body)
        self._notify()

    # ------------------------------------------------------------------ reading
    async def response(self, timeout: float = 5.0) -> dict:  # noqa: ASYNC109
        """The callback body the bot POSTed ({"type": ..., "data": ...})."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._response_fut), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no interaction response within {timeout}s for {self.describe()}; "
                f"recent requests: {self.fake.describe_requests(8)}"
            ) from None

    def describe(self) -> str:
        data = self.payload.get("data") or {}
        return f"interaction type {self.type} ({data.get('name') or data.get('custom_id')!r}) id {self.id}"

    @property
    def response_type(self) -> int | None:
        return None if self.response_body is None else self.response_body.get("type")

    @property
    def response_data(self) -> dict:
        return (self.response_body or {}).get("data") or {}

    @property
    def deferred(self) -> bool:
        return self.response_type in (CB_DEFERRED_MESSAGE, CB_DEFERRED_UPDATE)

    @property
    def ephemeral(self) -> bool:
        """Whether the answer the user sees is ephemeral (flags & 64 on the callback/defer or first followup)."""
        if self.response_type in (CB_MESSAGE, CB_DEFERRED_MESSAGE):
            return bool((self.response_data.get("flags") or 0) & EPHEMERAL)
        if self.response_type == CB_UPDATE and self.source_message is not None:
            return bool((self.source_message.get("flags") or 0) & EPHEMERAL)
        if self.followups:
            return bool((self.followups[0].get("flags") or 0) & EPHEMERAL)
        return False

    @property
    def modal(self) -> dict | None:
        """The modal the bot showed (callback type 9 data), if any."""
        return self.response_data if self.response_type == CB_MODAL else None

    @property
    def choices(self) -> list[dict] | None:
        """Autocomplete choices (callback type 8), if any."""
        return self.response_data.get("choices") if self.response_type == CB_AUTOCOMPLETE else None

    @property
    def message(self) -> dict | None:
        """The message the user sees as the answer: @original, else the first followup."""
        return self.original or (self.followups[0] if self.followups else None)

    def _visible_text(self) -> str | None:
        if self.response_type in (CB_MESSAGE, CB_UPDATE):
            text = message_text(self.response_data)
            if text:
                return text
        if self.original is not None and not ((self.original.get("flags") or 0) & LOADING):
            text = message_text(self.original)
            if text and (self.response_type != CB_DEFERRED_UPDATE or self.edits):
                return text
        for f in self.followups:
            text = message_text(f)
            if text:
                return text
        return None

    def texts(self) -> list[str]:
        """Every visible text so far: callback, @original, followups (in that order)."""
        out = []
        if self.response_type in (CB_MESSAGE, CB_UPDATE):
            out.append(message_text(self.response_data))
        if self.original is not None and self.original.get("_edited"):
            out.append(message_text(self.original))
        out.extend(message_text(f) for f in self.followups)
        return [t for t in out if t]

    async def wait_text(self, timeout: float = 5.0) -> str:  # noqa: ASYNC109
        """First non-deferred visible text (callback content, else @original edit / first followup)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self._visible_text()
            if text is not None:
                return text
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no visible text within {timeout}s for {self.describe()}: response={self.response_body!r}, "
                    f"original={public(self.original)!r}, followups={self.followups!r}; "
                    f"recent requests: {self.fake.describe_requests(8)}"
                )
            waiter = self._changed
            try:
                await asyncio.wait_for(waiter.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[dict]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self.followups) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {count} followups for {self.describe()}, got {self.followups!r}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return self.followups

    def __repr__(self) -> str:
        return f"<InteractionHandle {self.describe()} response_type={self.response_type}>"
