"""`history`: an object's steps (or its whole tree's), as JSON rows and as text."""

from __future__ import annotations

from typing import Any

from persistence import SqlStore

from ..core.records.records import HistoryEntry
from ..diagrams.trace import iso_time
from .inspect_views import locate


def history_row(entry: HistoryEntry) -> dict[str, Any]:
    """One step as the JSON of `history --json` (and of the web view's history page)."""
    return {"kind": entry.object_kind, "object_id": entry.object_id, "trigger": entry.trigger,
            "source": entry.source or None, "dest": entry.dest, "at": iso_time(entry.at),
            "detail": entry.detail, "by": entry.actor}


def history_view(store: SqlStore, object_id: str, whole_tree: bool) -> dict[str, Any]:
    """The object's history, or its whole root's with `whole_tree`, oldest step first."""
    found = locate(store, object_id)
    rows = store.history_of_root(found.root_id) if whole_tree else store.history(object_id)
    return {"database": store.url, "id": object_id, "kind": found.kind,
            "root_id": found.root_id, "rows": [history_row(e) for e in rows]}


def render_history(view: dict[str, Any]) -> str:
    """The history as a table whose columns line up, the detail last and never cut."""
    header = ("time (UTC)", "by", "kind", "object", "trigger", "source -> dest", "detail")
    table = [header] + [
        (r["at"][11:23], r["by"] or "-", r["kind"], r["object_id"], r["trigger"],
         f"{r['source'] or '-'} -> {r['dest']}", r["detail"] or "")
        for r in view["rows"]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  " + row[-1]
        for row in table).rstrip()
