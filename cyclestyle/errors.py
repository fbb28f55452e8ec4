"""Turning library errors into the one line a user reads."""
from __future__ import annotations


def first_line(error: BaseException, limit: int = 400) -> str:
    """The first line of `error`'s message (obstore, gloo and torch add pages of detail after it),
    at most `limit` characters; the type's name when the message is empty."""
    text = str(error).strip()
    return (text.splitlines()[0].strip() if text else type(error).__name__)[:limit]
