"""History paths to `history_segments` rows and back: one row per root per tick (schema 0006).

A tree's history is written the way it is read, as a whole: each write of a tick's history
(a tick's end, or a chunk of HISTORY_CHUNK steps) stores one row per root whose objects
moved, holding every object's path as JSON text:

    [[object_kind, object_id, source, [[trigger, dest, detail], ...]], ...]

in the order the tick first moved each object. A 10,000-disk rollback stores its 230,000
steps in a handful of rows instead of 130,000 (schema 0005's one row per object per tick),
and writing them was the largest single statement of each tick.

Reading one object's history means reading its root's segments and keeping its own steps.
Segments are read one at a time (only those whose text holds the object's id), and of each
only the object's own entries are decoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from statemachines.core.records.records import HistoryEntry, HistoryPath, ObjectKind

from .text_columns import encodable

#: The columns a segment is written with, in order.
COLUMNS = ("root_id", "at", "steps", "actor")

# ASCII only (the default): NULs and lone surrogates are escaped, which every database keeps.
_ENCODE = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


def rows(history: Sequence[HistoryPath], actor: str | None) -> Iterator[tuple[Any, ...]]:
    """A row per root and time, made as the writer takes them, all by one `actor`.

    A tick's paths share one time; a fault recorded outside a tick has its own.
    """
    grouped: dict[tuple[str, float], list[Any]] = {}
    for path in history:
        key = (path.root_id, path.at)
        found = grouped.get(key)
        if found is None:
            found = grouped[key] = []
        found.append((path.object_kind, path.object_id, path.source, path.steps))
    for (root_id, at), objects in grouped.items():
        encoded = _ENCODE(objects)
        if "\\ud" in encoded:  # perhaps a lone surrogate (a pair is escaped the same way)
            # A detail decoded with surrogateescape would come back as text no reader can
            # print or encode: it is stored as its escape, like a message in a column.
            encoded = _ENCODE([(kind, ident, source,
                                [(t, d, x if x is None else encodable(x)) for t, d, x in path])
                               for kind, ident, source, path in objects])
        yield root_id, at, encoded, actor


def expand(root_id: str, at: float, steps: str, object_id: str | None = None,
           actor: str | None = None) -> Iterator[HistoryEntry]:
    """The entries one segment holds, in order; only `object_id`'s when one is given."""
    entries = json.loads(steps) if object_id is None else _entries_of(steps, object_id)
    for kind, ident, source, path in entries:
        for trigger, dest, detail in path:
            yield HistoryEntry(kind, ident, root_id, trigger, source, dest, at, detail, actor)
            source = dest


def _entries_of(steps: str, object_id: str) -> Iterator[list[Any]]:
    """One object's entries of a segment, decoded alone.

    A segment holds up to 10,000 steps (0.8 MB of JSON; a tick's whole history once was one),
    and parsing all of it for one object took 0.1 s a segment at 50,000 steps.

    An entry is `["<kind>","<id>",...]`. Where the quoted id follows a comma, the quote is
    the JSON's own (a quote inside a string is escaped, so a backslash would precede it);
    the entry is decoded from the bracket before its kind, and kept only if it is
    that object's entry.
    """
    needle = quoted(object_id)
    at = steps.find(needle)
    while at >= 0:
        if steps[at - 1] == ",":
            start = steps.rfind("[", 0, at)
            if start >= 0 and steps[start + 1:at - 1] in _QUOTED_KINDS:
                entry, _ = _DECODER.raw_decode(steps, start)
                if isinstance(entry, list) and len(entry) == 4 and entry[1] == object_id:
                    yield entry
        at = steps.find(needle, at + 1)  # matches may overlap: `","` in `"command",","`


_DECODER = json.JSONDecoder()
_QUOTED_KINDS = frozenset(_ENCODE(kind.value) for kind in ObjectKind)


def quoted(object_id: str) -> str:
    """The id as it stands in a segment's text."""
    return _ENCODE(object_id)


def expand_all(segments: Iterable[Any], object_id: str | None = None) -> Iterator[HistoryEntry]:
    """Every entry of rows (root_id, at, steps[, actor]), one segment parsed at a time."""
    for root_id, at, steps, *actor in segments:
        yield from expand(root_id, at, steps, object_id, actor[0] if actor else None)
