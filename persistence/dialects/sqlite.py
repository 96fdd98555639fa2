"""SQLite: one file, one writer at a time, and no server.

Writers are serialised by the file's lock, so a claim needs no row locks and a schema change
no advisory lock; there is no server clock (a file's clock is its machine's) and no one in
other processes to wake. What SQLite does better than portable SQL is the upsert, and the
write-ahead log that lets readers go on while the engine writes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .base import Dialect

#: The schema's logger: the WAL switch is part of making a file endaction's.
log = logging.getLogger("endaction.schema")


class SQLiteDialect(Dialect):
    """A SQLite file: the embedded default."""

    name = "sqlite"
    shares_database = False

    def insert_if_absent(self, conn: Connection, table: Table,
                         rows: Sequence[dict[str, Any]]) -> None:
        """`INSERT ... ON CONFLICT DO NOTHING`, many rows as one executemany."""
        if rows:
            conn.execute(sqlite_insert(table).on_conflict_do_nothing(), list(rows))

    def after_schema(self, engine: Engine) -> None:
        """WAL, so readers never block the ticking writer.

        The mode persists in the file, and is set only once the file is known to be ours (it
        rewrites the file's header). Switching needs the file to itself: while another
        process uses it, the switch waits for the next open, and the database works
        meanwhile in its rollback-journal mode.
        """
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
        except sqlite3.OperationalError as err:
            log.warning("could not switch %s to WAL mode yet (%s); trying again next time",
                        engine.url, err)
        finally:
            raw.close()
