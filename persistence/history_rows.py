"""History entries to `transitions` rows and back: one row per object per tick.

The engine records every transition as its own `HistoryEntry`; what is stored is one row per
object per write, holding the path the object took (schema 0005). A 10,000-disk rollback
records 230,000 entries and writes 130,000 rows, and reading gives back the same entries, in
the same order for each object, with their times.

A row of one step is written as before (path NULL), with no JSON at all. A row of several
steps keeps the first step's source and the last step's trigger, dest and detail in its
columns (so `dest` is where the object stood when the tick committed) and every step in
`path`. Entries are only merged while they follow on from each other (each step leaves from
where the last one arrived, at the same moment); anything else starts a new row, so nothing
is ever lost by the compaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import RowMapping

from statemachines.core.records import HistoryEntry

from .text_columns import ESCAPED_NUL, NUL, storable

#: The columns a history row is written with, in order.
COLUMNS = (*HistoryEntry._fields, "path")

_quote: Callable[[str], str] = json.encoder.encode_basestring


def compact(history: Sequence[HistoryEntry]) -> Iterator[tuple[Any, ...]]:
    """Rows for `history`: each object's consecutive steps at one moment share a row. Rows
    come in the order of each object's first step, and a row's steps in their own order;
    they are made as the writer takes them, not all at once."""
    paths: dict[str, list[HistoryEntry]] = {}
    rows: list[list[HistoryEntry]] = []
    get = paths.get
    for entry in history:
        path = get(entry.object_id)
        if path is not None:
            last = path[-1]
            if (last.at == entry.at and last.dest == entry.source
                    and last.root_id == entry.root_id and last.object_kind == entry.object_kind):
                path.append(entry)
                continue
        path = [entry]
        paths[entry.object_id] = path
        rows.append(path)
    return map(_row, rows)


def _row(path: list[HistoryEntry]) -> tuple[Any, ...]:
    first, last = path[0], path[-1]
    if len(path) == 1:
        return (*first._replace(detail=storable(first.detail)), None)
    # By hand, one C-quoted string at a time: several times cheaper than a JSONEncoder call
    # per row, and there are 130,000 rows in a 10,000-disk rollback.
    steps = "[" + ",".join([
        f"[{_quote(e.trigger)},{_quote(e.dest)},"
        f"{'null' if e.detail is None else _quote(e.detail.replace(NUL, ESCAPED_NUL))}]"
        for e in path]) + "]"
    return (first.object_kind, first.object_id, first.root_id, last.trigger, first.source,
            last.dest, first.at, storable(last.detail), steps)


def expand(rows: Iterable[RowMapping]) -> Iterator[HistoryEntry]:
    """The entries the rows hold, in order."""
    for r in rows:
        path = r["path"]
        if path is None:
            yield HistoryEntry(r["object_kind"], r["object_id"], r["root_id"], r["trigger"],
                               r["source"], r["dest"], r["at"], r["detail"])
            continue
        source = r["source"]
        for trigger, dest, detail in json.loads(path):
            yield HistoryEntry(r["object_kind"], r["object_id"], r["root_id"], trigger, source,
                               dest, r["at"], detail)
            source = dest
