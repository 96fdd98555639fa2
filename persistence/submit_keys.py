"""Submit keys over SQL: the roots that keys name, read in the submit's own transaction.

A key is a column of its root (`commands.submit_key`) under a unique index, written with the
root by the tick's ordinary bulk insert, so a keyed submit costs no extra write. Of two
clients racing with one key exactly one commits: the other's insert fails on the index (on
PostgreSQL, once the winner commits; SQLite's serialised writers never get that far, the
look-up already sees the winner), its transaction rolls back, and `SubmitKeyTaken`
(persistence/db_errors.py) sends the submit to look again.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, select

from statemachines.core.records.records import CommandRecord

from .batching import matching
from .record_rows import command_of
from .schema import commands


def roots_by_keys(conn: Connection, keys: Collection[str]) -> dict[str, CommandRecord]:
    """The roots these keys name, by key; a key nobody used is missing.

    The query runs on the unique index of keys (`submit_key IN (...)`, `= ANY(...)` imply its
    condition).
    """
    found: dict[str, CommandRecord] = {}
    for condition in matching(conn, commands.c.submit_key, sorted(set(keys))):
        for row in conn.execute(select(commands).where(condition)).mappings():
            record = command_of(row)
            found[row["submit_key"]] = record
    return found
