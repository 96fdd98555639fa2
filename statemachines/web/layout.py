"""The frame every page shares, and the small pieces every page shows the same way.

A state or outcome reads in the colours `endaction status` prints it in (one table,
`inspect_views`), so the terminal and the browser never disagree about what is bad. Pages
put what changes under `<section id="live">`: `live.js` re-reads the page every few seconds
and swaps that part only, so a form being filled in (the token) is never reloaded away.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..diagrams.trace import iso_time
from ..toolkit.inspect_views import GOOD_OUTCOMES, STATE_COLOURS
from ..toolkit.listing import age
from .markup import Safe, fill, join

_TONES = {"green": "good", "red": "bad", "yellow": "busy", "cyan": "step"}
_LEFT_BEHIND = ("revert_failed", "child_revert_failed")


@dataclass(frozen=True)
class Site:
    """What every page says about where it reads from and what it may do.

    Attributes:
        database: the database's URL, password hidden.
        app_name: the application whose database it is.
        actions: whether cancel and cleanup are offered (with the token).
        refresh: seconds between the live part's updates (0: never).
    """

    database: str
    app_name: str
    actions: bool = False
    refresh: float = 5.0


_FRAME = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · endaction</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/live.js" defer></script>
</head>
<body data-refresh="$refresh">
<header>
<a class="brand" href="/">endaction</a>
<nav><a href="/">Roots</a> <a href="/leftovers">Left revert_failed</a></nav>
<span class="where">$app · <code>$database</code> · $mode</span>
</header>
<main>
<h1>$heading</h1>
$note
$body
</main>
</body>
</html>
"""


def frame(site: Site, title: str, body: Safe, *, heading: object = None,
          note: str | None = None) -> Safe:
    """A whole page; `note` is the one-line answer to an action just taken."""
    mode = "actions allowed (with the token)" if site.actions else "read-only"
    return fill(_FRAME, title=title, heading=title if heading is None else heading,
                refresh=f"{site.refresh:g}", app=site.app_name, database=site.database,
                mode=mode, body=body,
                note=fill('<p class="note" role="status">$note</p>', note=note) if note
                else Safe(""))


def live(content: Safe) -> Safe:
    """The part of a page that follows the engine, which `live.js` swaps in every few seconds.

    Only this section is read again, so that a form outside it is left alone while it is
    filled in.
    """
    return fill('<section id="live">$content</section>', content=content)


def state(status: object) -> Safe:
    """A command's or task's state, as a badge in its colour."""
    text = str(status)
    tone = _TONES.get(STATE_COLOURS.get(text, ""), "plain")
    return fill('<span class="state $tone" data-state="$text">$text</span>', tone=tone,
                text=text)


def outcome(value: object) -> Safe:
    """A command's outcome, as a badge in its tone; a command with no outcome shows nothing.

    A good outcome and one that left something revert_failed each have a tone of their own.
    """
    if value is None:
        return Safe("")
    text = str(value)
    tone = "good" if text in GOOD_OUTCOMES else "bad" if text in _LEFT_BEHIND else "plain"
    return fill('<span class="outcome $tone" data-outcome="$text">$text</span>', tone=tone,
                text=text)


def moment(at: float) -> Safe:
    """A time as the CLI's views print it (UTC, milliseconds), the date in its tooltip."""
    if not at:
        return Safe("-")
    stamp = iso_time(at)
    return fill('<time datetime="$stamp" title="$stamp">$clock</time>', stamp=stamp,
                clock=stamp[11:23])


def ago(at: float, now: float) -> Safe:
    """A time as how long before `now` it was, the time itself (UTC) in its tooltip."""
    stamp = iso_time(at)
    return fill('<time datetime="$stamp" title="$stamp">$age</time>', stamp=stamp,
                age=age(now - at))


def table(headers: list[str], rows: list[Safe], *, empty: str, css: str = "") -> Safe:
    """A table of `rows` under `headers`; with no rows, the `empty` sentence instead.

    An empty list still says what it would hold, rather than show a bare header.
    """
    if not rows:
        return fill('<p class="empty">$empty</p>', empty=empty)
    head = join(fill("<th>$h</th>", h=h) for h in headers)
    return fill('<table class="$css"><thead><tr>$head</tr></thead><tbody>$rows</tbody>'
                "</table>", css=css, head=head, rows=join(rows, "\n"))
