"""A command's or task's machine, as `endaction trace` draws it (`statemachines.diagrams.trace`).

Its current state is highlighted, and the path it took is drawn from its history.

The SVG is Graphviz's, inlined so that CSS can mark the states: each state's node gets the
classes `visited` and `current`, which the page's style (and a test) can find without
reading colours. Without Graphviz the page says so, and shows the Mermaid text of the same
drawing, which a Markdown viewer or mermaid.live renders.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from dataclasses import replace

from persistence import SqlStore

from ..core.errors import EndactionError
from ..diagrams import GraphvizMissing, mermaid_source, render, require_graphviz
from ..diagrams.trace import Step, path_of, trace_drawing
from ..toolkit.inspect_views import UnknownObject, locate
from .errors import NotFound
from .layout import Site, frame, live, moment, state, table
from .markup import Safe, clipped, fill, join, path

_NODE = re.compile(r'<g id="(node\d+)" class="node">(\s*<title>)([^<]*)(</title>)')
_SIZE = re.compile(r'<svg width="[^"]*" height="[^"]*"')


def machine_page(site: Site, store: SqlStore, object_id: str) -> Safe:
    """The page of the command or task `object_id`: its machine, its path and its events.

    The path is numbered with the time of each step (UTC); the events are the history rows
    that moved it nowhere. An id that names neither a command nor a task is NotFound.
    """
    try:
        found = locate(store, object_id)
    except UnknownObject:
        raise NotFound(f"no command or task with id {clipped(object_id, 100)!r} in "
                       f"{store.url}") from None
    history = store.history(object_id)
    steps = tuple(path_of(history))
    if found.command is not None:
        what, status = found.command.type, str(found.command.status)
    else:
        what = found.task.verb if found.task else "task"
        status = str(found.task.status) if found.task else (steps[-1].state if steps else "")
    title = f"{found.kind} {what} {object_id}: {status}"
    diagram = _diagram(found.kind, object_id, steps, title, status)
    path_rows = [fill("<tr><td>$n</td><td>$at</td><td>$came</td><td>$state</td></tr>",
                      n=s.number, at=moment(s.at),
                      came=f"{s.source} --{s.trigger}-->" if s.source else s.trigger,
                      state=state(s.state)) for s in steps]
    events = [fill("<tr><td>$at</td><td>$event</td><td>$detail</td></tr>", at=moment(e.at),
                   event=e.trigger, detail=e.detail or "")
              for e in history if e.source == e.dest and e.source]
    links = fill('<p class="links"><a href="$tree">its root\'s tree</a> · '
                 '<a href="$history">the root\'s history</a></p>',
                 tree=path("roots", found.root_id) + f"#{found.kind[0]}-{object_id}",
                 history=path("roots", found.root_id, "history"))
    body = join([links, live(join([
        fill('<p>Now <span class="now">$state</span>; the path it took is numbered on the '
             "states, with the time of each step (UTC).</p>", state=state(status)),
        diagram,
        Safe("<h2>Path</h2>"),
        table(["#", "Time (UTC)", "Move", "State"], path_rows, empty="no history recorded"),
        Safe("<h2>Events</h2>") if events else Safe(""),
        table(["Time (UTC)", "Event", "Detail"], events, empty="") if events else Safe(""),
    ]))])
    return frame(site, f"{found.kind} {what} {object_id}", body,
                 heading=fill("$kind $what <code>$id</code>", kind=found.kind, what=what,
                              id=object_id))


def _diagram(kind: str, object_id: str, steps: Sequence[Step], title: str,
             status: str) -> Safe:
    try:
        require_graphviz(["svg"])
        svg = Safe(_svg(kind, object_id, tuple(steps), title, status))
        return fill('<figure class="diagram">$svg</figure>', svg=svg)
    except (GraphvizMissing, EndactionError) as err:
        drawing, highlight = trace_drawing(kind, object_id, steps, title)
        return fill('<div class="no-diagram"><p>The diagram cannot be drawn here: $why</p>'
                    "<p>Its Mermaid text (mermaid.live, or any Markdown viewer that renders "
                    "Mermaid, draws it):</p><pre class=\"mermaid-text\">$text</pre></div>",
                    why=str(err), text=mermaid_source(drawing, highlight))


@functools.lru_cache(maxsize=64)
def _svg(kind: str, object_id: str, steps: tuple[Step, ...], title: str, status: str) -> str:
    """The decorated SVG, drawn once for each history and status.

    The same history and status draw the same picture, so a page that a browser re-reads
    every few seconds runs `dot` only when something moved.
    """
    drawing, highlight = trace_drawing(kind, object_id, steps, title)
    if status in drawing.states:
        highlight = replace(highlight, current=status)
    svg = render(drawing, "svg", highlight).decode()
    return decorate(svg, set(highlight.visited), highlight.current)


def decorate(svg: str, visited: set[str], current: str | None) -> str:
    """Graphviz's SVG for inlining: no XML prologue, scaled by CSS, every state marked.

    Each state's node is marked with `data-state` and the classes `visited` and `current`.
    """
    start = svg.find("<svg")
    body = svg[start:] if start >= 0 else svg
    body = _SIZE.sub('<svg role="img" aria-label="state machine"', body, count=1)

    def mark(match: re.Match[str]) -> str:
        name = html.unescape(match[3])
        classes = ["node", *(["visited"] if name in visited else []),
                   *(["current"] if name == current else [])]
        return (f'<g id="{match[1]}" class="{" ".join(classes)}" '
                f'data-state="{html.escape(name, quote=True)}">'
                f"{match[2]}{match[3]}{match[4]}")

    return _NODE.sub(mark, body)

