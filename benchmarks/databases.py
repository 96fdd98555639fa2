"""Where a benchmark run keeps its data: a fresh SQLite file, or an emptied PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from persistence import connect
from persistence.ledger import ledger_tables
from persistence.schema import metadata
from persistence.schema_version import VERSION_TABLE
from statemachines.example.vm import ImageInventory


def fresh_url(url: str | None, folder: Path) -> str:
    """`url` emptied of everything endaction made there, or a new SQLite file in `folder`."""
    if url is None:
        return str(folder / "bench.db")
    engine = connect(url)
    with engine.begin() as conn:
        for name in (*reversed(metadata.sorted_tables), VERSION_TABLE,
                     *ledger_tables([ImageInventory])):
            conn.execute(text(f"DROP TABLE IF EXISTS {getattr(name, 'name', name)} CASCADE"))
    engine.dispose()
    return url
