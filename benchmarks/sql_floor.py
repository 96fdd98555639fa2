"""The raw-SQL floor: what no engine on SQLite can beat.

Plain sqlite3 writes the same rows an endaction run wrote (the same tables and indexes, the same
number of inserts, updates and deletes per table, in the same number of transactions, and
history segments holding as many bytes of text), with no engine at all.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Float, Integer, MetaData, Table, create_engine

from persistence.schema import metadata
from statemachines.example.vm import ImageInventory

from .counting import peak_rss_mb


def _tables() -> dict[str, Table]:
    tables = dict(metadata.tables)
    ledger = ImageInventory.table
    tables[ledger.name] = ledger
    return tables


def _value(table: str, column: Any, row: int) -> object:
    if isinstance(column.type, Integer):
        return row
    if isinstance(column.type, Float):
        return float(row)
    return f"{table}-{column.name}-{row:012d}"


def _chunks(total: int, parts: int) -> Iterator[range]:
    size = -(-total // max(1, parts))
    for first in range(0, total, max(1, size)):
        yield range(first, min(total, first + size))


def run(count: int, rows: dict[str, int], ticks: int,
        with_history: bool = True, history_bytes: int = 0) -> dict[str, Any]:
    """Write `rows` ("INSERT commands": n, "UPDATE async_tasks": n, ...) in `ticks` transactions.

    The history segments' text is `history_bytes` long in all; `seconds` covers the writes only.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "floor.db"
        engine = create_engine(f"sqlite:///{path}")
        tables = _tables()
        MetaData().create_all(engine, tables=list(tables.values()))
        engine.dispose()
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        plan: list[tuple[str, str, list[tuple[object, ...]]]] = []
        inserted: dict[str, int] = {}
        for key in sorted(rows, key=lambda k: (not k.startswith("INSERT"), k)):
            verb, name = key.split()
            if name == "history_segments" and not with_history:
                continue
            table = tables[name]
            n = rows[key]
            if verb == "INSERT":
                columns = [c for c in table.columns
                           if not (c.primary_key and isinstance(c.type, Integer))]
                start = inserted.get(name, 0)
                inserted[name] = start + n
                values = [tuple(_value(name, c, start + i) for c in columns) for i in range(n)]
                if name == "history_segments":  # the JSON text, as long as the engine's
                    text = "x" * (history_bytes // max(1, n))
                    where = [c.name for c in columns].index("steps")
                    values = [(*v[:where], text, *v[where + 1:]) for v in values]
                sql = (f"INSERT INTO {name} ({', '.join(c.name for c in columns)}) "
                       f"VALUES ({', '.join('?' * len(columns))})")
                plan.append((sql, name, values))
            else:
                keys = [c for c in table.primary_key.columns]
                mutable = [c for c in table.columns if not c.primary_key][:3]
                have = max(1, inserted.get(name, 1))
                if verb == "UPDATE":
                    sql = (f"UPDATE {name} SET {', '.join(f'{c.name} = ?' for c in mutable)} "
                           f"WHERE {' AND '.join(f'{k.name} = ?' for k in keys)}")
                    values = [tuple(_value(name, c, i + 7) for c in mutable)
                              + tuple(_value(name, k, i % have) for k in keys)
                              for i in range(n)]
                else:
                    sql = f"DELETE FROM {name} WHERE {' AND '.join(f'{k.name} = ?' for k in keys)}"
                    values = [tuple(_value(name, k, i % have) for k in keys) for i in range(n)]
                plan.append((sql, name, values))
        started = time.perf_counter()
        for tick in range(ticks):
            db.execute("BEGIN IMMEDIATE")
            for sql, _, values in plan:
                part = list(_chunks(len(values), ticks))
                if tick < len(part):
                    db.executemany(sql, [values[i] for i in part[tick]])
            db.execute("COMMIT")
        seconds = time.perf_counter() - started
        db.close()
    return {"case": "raw sqlite3" + ("" if with_history else " without history"),
            "database": "sqlite", "count": count, "seconds": seconds, "ticks": ticks,
            "statements": len(plan) * ticks,
            "rows_written": sum(len(v) for _, _, v in plan), "peak_rss_mb": peak_rss_mb()}
