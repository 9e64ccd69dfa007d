"""Domain errors. Each carries the sentence the user sees; cogs turn them into ephemeral replies."""

from __future__ import annotations


class BounceError(Exception):
    """An error whose message is safe and useful to show the person who caused it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(BounceError):
    """The input was malformed or out of range; nothing was changed."""


class NotFound(BounceError):
    """The thing asked for does not exist (or is not yours)."""


class NotAllowed(BounceError):
    """The caller may not do this here."""


class Conflict(BounceError):
    """The request clashes with existing state (a duplicate, a closed round...)."""
