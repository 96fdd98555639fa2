"""`transitions` rows, as schemas 0001 to 0005 wrote them, back into history entries.

Since schema 0006 the history is written as segments (persistence/history_segments.py);
the rows written before stay where they are and are read here. Up to 0004 a row was one
step. Schema 0005 stored an object's consecutive steps within one tick as one row: `path`
NULL for a row of one step; otherwise the JSON list `[[trigger, dest, detail], ...]` of the
steps from `source`, the row's own trigger, dest and detail being the last step's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from sqlalchemy import RowMapping

from statemachines.core.records.records import HistoryEntry


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
