"""HTML built from plain templates that escape by default.

Everything a page shows comes from the database, where a command's error holds a host's
words and a type name or an entity is whatever an application wrote: one value inserted
unescaped would be script in the operator's browser, on a page that may carry buttons that
cancel roots. So a template fills in values escaped unless they are `Safe` (markup that was
itself built here), and forgetting to escape is no longer possible, only choosing not to.
"""

from __future__ import annotations

import html
import string
from collections.abc import Iterable
from urllib.parse import quote, urlencode


class Safe(str):
    """Text that is already HTML (built by `fill`, `esc` or `join`): inserted as it is."""

    __slots__ = ()


def esc(value: object) -> Safe:
    """Any value as HTML text, quotes included (it may land in an attribute)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def fill(template: str, **values: object) -> Safe:
    """`template` with `$name` placeholders filled in, every value escaped unless `Safe`."""
    return Safe(string.Template(template).substitute({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[object], separator: str = "") -> Safe:
    """The parts joined by `separator`, each of them, and the separator, escaped unless `Safe`."""
    return Safe(esc(separator).join(esc(part) for part in parts))


def path(*segments: str) -> str:
    """A URL path whose segments are ids read from the database, each percent-encoded."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def with_query(base: str, **params: object) -> str:
    """`base?...` with the parameters that are set (None and "" are left out)."""
    given = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    return f"{base}?{urlencode(given)}" if given else base


def clipped(text: str | None, length: int) -> str:
    """A one-line excerpt of a long text (a cause can be kilobytes of a host's words)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= length else flat[:length - 1] + "…"
