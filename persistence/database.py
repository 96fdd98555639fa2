"""Turning a URL or a path into a configured SQLAlchemy engine.

SQLite is the embedded default: BEGIN IMMEDIATE for write transactions (those opened with
the execution option `WRITE_OPTION`) so a tick takes the write lock up front instead of
failing on upgrade; plain reads begin DEFERRED and never hold the write lock. Connecting
writes nothing to the file: WAL mode, which rewrites its header, is switched on by
`schema_version` once the file is known to be endaction's, and the directory of a new file
is made only when asked (a read-only command must not create folders for a mistyped path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from statemachines.core.errors import StoreUnavailable

from .db_errors import LOCK_WAITS

WRITE_OPTION = "endaction_write"


def normalise_url(url: str) -> str:
    """Accept a bare file path as SQLite, and a plain postgresql:// URL as psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().absolute()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def connect(url: str, busy_timeout_ms: int = 10_000, make_folder: bool = False) -> Engine:
    """A SQLAlchemy engine for `url` (a URL, or a SQLite file path), configured for the store.

    Args:
        url: `postgresql://...`, any SQLAlchemy URL, or a path taken as a SQLite file.
        busy_timeout_ms: how long SQLite waits for another writer's lock before it fails.
        make_folder: make the SQLite file's folder if missing (only where a database may be
            created).
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    if make_folder and database and database != ":memory:":
        folder = Path(database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreUnavailable(f"cannot make the folder {folder} for the database "
                                   f"{database}: {err}") from err
    engine = create_engine(url)
    LOCK_WAITS[engine.url.render_as_string(hide_password=True)] = int(busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
