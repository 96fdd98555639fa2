"""Free text on its way into a column: messages, errors and details come from agents and
exceptions, and PostgreSQL refuses a NUL character in text (SQLite keeps it, and readers cut
the text there). One such message would fail every write of the tick that carries it."""

from __future__ import annotations

NUL = "\x00"
ESCAPED_NUL = "\\0"


def storable(text: str | None) -> str | None:
    """The text with NUL characters written as the two characters \\0."""
    if text is None or NUL not in text:
        return text
    return text.replace(NUL, ESCAPED_NUL)
