"""How problems are put to users: one line each, never a traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "one_line"]


class ConfigError(ValueError):
    """An invalid option value; its message is one line meant for the user."""


def one_line(message: object, limit: int = 300) -> str:
    """Return ``str(message)`` as one line of at most ``limit`` characters, for users."""
    text = " ".join(str(message).split()) or type(message).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
