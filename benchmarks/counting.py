"""What a run cost the database: statements sent, and rows written per table and verb.

Both are counted from SQLAlchemy's cursor events (driver-level SQL included; PostgreSQL's COPY
is not seen, so the rollback case counts the rows it copies itself).
"""

from __future__ import annotations

import re
import resource
from collections import Counter
from typing import Any

from sqlalchemy import Engine, event

_WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)


class Writes:
    """Counts, from the moment it is attached: statements, and rows by (verb, table)."""

    def __init__(self, engine: Engine) -> None:
        self.statements = 0
        self.rows: Counter[tuple[str, str]] = Counter()
        event.listen(engine, "after_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        self.statements += 1
        match = _WRITE.match(statement)
        if match is None:
            return
        verb = match.group(1).split()[0].upper()
        rows = cursor.rowcount if cursor.rowcount is not None and cursor.rowcount >= 0 \
            else (len(parameters) if executemany else 1)
        self.rows[(verb, match.group(2))] += rows

    def reset(self) -> None:
        """Start both counts again from zero, as if the counter had just been attached."""
        self.statements = 0
        self.rows.clear()

    @property
    def rows_written(self) -> int:
        """The rows written since the counts began, over every table and verb."""
        return sum(self.rows.values())

    def by_table(self) -> dict[str, int]:
        """The rows written, keyed "VERB table" (as "INSERT commands"), in sorted order."""
        return {f"{verb} {table}": count for (verb, table), count in sorted(self.rows.items())}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
