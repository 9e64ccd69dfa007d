"""Rendering helpers for what people read: safe names, cuts with a visible mark, Discord limits."""

from __future__ import annotations

import re
from datetime import datetime

# Discord's documented limits (the OpenAPI spec misses some of them).
CONTENT_MAX = 2000
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
CUSTOM_ID_MAX = 100
MODAL_TITLE_MAX = 45
MODAL_LABEL_MAX = 45
TEXT_INPUT_MAX = 4000

ELLIPSIS = "…"
NOTE_MAX = 1000
PROJECT_NAME_MAX = 80

_MARKDOWN_RE = re.compile(r"([\\*_~`|>#\[\]()-])")
# A link as Discord would auto-link it (trailing punctuation is not part of it), with the <…> a member may have
# put around it already.
_LINK_RE = re.compile(r"<?(https?://[^\s<>]*[^\s<>.,;:!?'\")\]])>?", re.IGNORECASE)


def cut(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters; a cut ends with a visible "…".

    Cuts at a word boundary when one is reasonably close to the limit.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    head = flat[: limit - 1]
    space = head.rfind(" ")
    if space >= (limit - 1) // 2:
        head = head[:space]
    return head.rstrip(" ,;:.-–—") + ELLIPSIS


def cut_block(text: str, limit: int) -> str:
    """Like `cut` but keeps line breaks: for notes and multi-line bodies."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def escape_markdown(text: str) -> str:
    return _MARKDOWN_RE.sub(r"\\\1", text)


def defuse(text: str) -> str:
    """Member-written text made safe for any message, public ones included: markdown escaped, mention syntax
    defused, and every link wrapped in <…> so it never unfurls into a preview (the bot's own embeds on the
    same message stay; Discord's SUPPRESS_EMBEDS flag would hide those too)."""
    out: list[str] = []
    pos = 0
    for link in _LINK_RE.finditer(text):
        out.append(escape_markdown(text[pos:link.start()].replace("@", "@\u200b")))
        out.append(f"<{link.group(1)}>")
        pos = link.end()
    out.append(escape_markdown(text[pos:].replace("@", "@\u200b")))
    return "".join(out)


def safe_name(name: str, limit: int = 32) -> str:
    """A member's display name, safe to put in any message: cut, then `defuse`d."""
    return defuse(cut(name or "someone", limit))


def safe_title(text: str, limit: int = PROJECT_NAME_MAX) -> str:
    """Member-written names (projects) inside bold text: cut, then `defuse`d."""
    return defuse(cut(text, limit))


def ts(moment: datetime, style: str = "F") -> str:
    """A Discord timestamp: each reader sees it in their own zone."""
    return f"<t:{int(moment.timestamp())}:{style}>"
