"""Free text on its way into a column.

Messages, errors and details come from agents and exceptions. PostgreSQL refuses a NUL
character in text (SQLite keeps it, and readers cut the text there), and neither database takes
a lone surrogate (text decoded with `surrogateescape`, such as a file name or a subprocess's
output, holds them: the driver cannot even encode it). One such message would fail every write
of the tick that carries it.
"""

from __future__ import annotations

NUL = "\x00"
ESCAPED_NUL = "\\0"


def storable(text: str | None) -> str | None:
    r"""The text made storable: each NUL as the two characters \0, each lone surrogate escaped.

    A lone surrogate is written as its escape (\udcff), as `encodable` writes it.
    """
    if text is None:
        return None
    if NUL in text:
        text = text.replace(NUL, ESCAPED_NUL)
    return encodable(text)


def encodable(text: str) -> str:
    r"""The text with lone surrogates as their escapes (\udcff): what UTF-8 can encode."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def needs_care(text: str | None) -> bool:
    """Whether `storable` may change the text (cheap: most text is ASCII without NUL)."""
    return text is not None and (NUL in text or not text.isascii())
