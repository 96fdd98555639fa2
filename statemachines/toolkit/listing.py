"""Reading and showing a page of roots: ages, times, cursors, and the command of the next page.

`endaction list` and the web view's roots page share them, so a cursor printed by one is read
by the other, and an age reads the same in both.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime

import click

from ..core.records.records import CommandRecord

#: Roots a page of `endaction list` shows unless `--limit` says otherwise: a next-page
#: command printed elsewhere (the web view) leaves `--limit` out when it asks this many.
LIST_LIMIT = 50
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_since(text: str, now: float) -> float:
    """A point in time: an age ("30m", "2h", "7d"), an ISO 8601 time, or Unix seconds."""
    if match := _AGO.match(text):
        return now - float(match[1]) * _UNITS[match[2]]
    try:
        return float(text) if re.fullmatch(r"\d+(\.\d+)?", text.strip()) \
            else datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither an age (30m, 2h, 7d), an ISO 8601 "
                                 "time nor Unix seconds", param_hint="--since") from None


def cursor_of(record: CommandRecord) -> str:
    """The cursor that names the page after `record`."""
    return f"{record.created_at!r}/{record.id}"


def parse_cursor(text: str) -> tuple[float, str]:
    """The creation time and root id a cursor from `cursor_of` names (`--before`).

    Anything else is a click BadParameter that says the cursor comes from `endaction list`.
    """
    stamp, sep, root_id = text.partition("/")
    try:
        value = float(stamp)
    except ValueError:
        value = float("nan")
    if not sep or not root_id or value != value:
        raise click.BadParameter(f"{text!r} is not a cursor printed by `endaction list`",
                                 param_hint="--before")
    return value, root_id


def age(seconds: float) -> str:
    """A short age: 45s, 12m, 3h, 2d."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def next_page_command(cursor: str, options: list[tuple[str, object]]) -> str:
    """The command of the next page: this one's options (those given) and --before."""
    words = ["endaction", "list"]
    for option, value in options:
        if value is not None:
            words += [option, str(value)]
    return shlex.join([*words, "--before", cursor])
