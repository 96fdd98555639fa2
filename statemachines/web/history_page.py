"""A root's history timeline, as `endaction history --tree` prints it.

It holds every transition and event of every command and task in the root's tree, in the
order the engine recorded them.

The history of one root is read whole (`SqlStore.history_of_root`: its own rows, never the
table's) and shown `ROWS_PER_PAGE` rows at a time, each row timed from the root's creation
too, which is what a reader of a timeline asks first (how long did the rollback take?).
"""

from __future__ import annotations

from collections.abc import Mapping

from persistence import SqlStore

from ..core.records.records import HistoryEntry
from .errors import BadInput, Moved, NotFound
from .layout import Site, frame, live, moment, state, table
from .markup import Safe, clipped, fill, join, path, with_query

ROWS_PER_PAGE = 500


def history_page(site: Site, store: SqlStore, root_id: str,
                 params: Mapping[str, str]) -> Safe:
    """The page of `root_id`'s timeline that the `page` parameter names (1 by default).

    The id of a command that is not a root moves to its root's history; an unknown parameter,
    an unknown root, or a page that is not a number or is past the last is refused, never
    shown as an empty page.
    """
    unknown = sorted(set(params) - {"page"})
    if unknown:
        raise BadInput(f"unknown parameter {unknown[0]!r}: the history page takes page")
    text = params.get("page", "").strip() or "1"
    if not (len(text) <= 9 and text.isascii() and text.isdigit() and int(text) >= 1):
        raise BadInput(f"page={clipped(text, 40)!r} is not a page number (1, 2, ...)")
    number = int(text)
    root = store.command(root_id)
    if root is None:
        raise NotFound(f"no root with id {clipped(root_id, 100)!r} in {store.url}")
    if root.parent_id is not None:
        raise Moved(path("roots", root.root_id, "history"))
    entries = store.history_of_root(root_id)
    pages = max(1, -(-len(entries) // ROWS_PER_PAGE))
    if number > pages:
        raise NotFound(f"page {number} of the history of {root_id}: it has {pages} page(s) "
                       f"of {ROWS_PER_PAGE} rows")
    commands, tasks = store.tree(root_id)
    names = {c.id: c.type for c in commands} | {t.id: t.verb for t in tasks}
    first = (number - 1) * ROWS_PER_PAGE
    shown = entries[first:first + ROWS_PER_PAGE]
    start = root.created_at
    rows = [_row(entry, names.get(entry.object_id, ""), start) for entry in shown]
    base = path("roots", root_id, "history")
    paging = [fill('<a href="$href">page $n</a>', href=with_query(base, page=n), n=n)
              for n in (number - 1, number + 1) if 1 <= n <= pages]
    body = join([
        fill('<p class="links"><a href="$tree">the tree</a></p>',
             tree=path("roots", root_id)),
        live(join([
            fill('<p>$count row(s); rows $a to $b shown.</p>', count=len(entries),
                 a=first + 1 if shown else 0, b=first + len(shown)),
            table(["Time (UTC)", "Since start", "Kind", "Object", "Trigger", "Move", "Detail"],
                  rows, empty="no history recorded", css="timeline"),
            fill('<p class="paging">$links</p>', links=join(paging, " · ")),
        ])),
    ])
    return frame(site, f"History of {root.type} {root_id}", body,
                 heading=fill("History of $type <code>$id</code>", type=root.type,
                              id=root_id))


def _row(entry: HistoryEntry, name: str, start: float) -> Safe:
    moved = entry.source != entry.dest or not entry.source
    if moved:
        came = state(entry.source) if entry.source else Safe("created")
        move = fill("$source → $dest", source=came, dest=state(entry.dest))
    else:
        move = fill("(in $now)", now=state(entry.dest))
    return fill(
        '<tr class="$kind$event"><td>$at</td><td class="since">+$since s</td><td>$kind</td>'
        '<td><a href="$href">$name</a> <code>$id</code></td><td>$trigger</td><td>$move</td>'
        '<td class="detail">$detail</td></tr>',
        kind=entry.object_kind, event="" if moved else " event", at=moment(entry.at),
        since=f"{max(0.0, entry.at - start):.3f}", href=path("machine", entry.object_id),
        name=name or entry.object_kind, id=entry.object_id, trigger=entry.trigger,
        move=move, detail=clipped(entry.detail, 600))
