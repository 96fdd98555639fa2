"""Turning a URL or a path into a configured SQLAlchemy engine.

SQLite is the embedded default: BEGIN IMMEDIATE for write transactions (those opened with
the execution option `WRITE_OPTION`) so a tick takes the write lock up front instead of
failing on upgrade; plain reads begin DEFERRED and never hold the write lock. Connecting
writes nothing to the file: WAL mode, which rewrites its header, is switched on by
`schema_version` once the file is known to be endaction's, and the directory of a new file
is made only when asked (a read-only command must not create folders for a mistyped path).

A SQLite file is also watched for being deleted or replaced while the process runs (see
`DatabaseReplaced`): every connection taken from the pool first checks that the path still
names the file the engine first opened, by (st_dev, st_ino), and every connection made after
the first opens the file with `mode=rw`, so SQLite never makes a new, empty file in its place;
and a connection to a file that went folds its write-ahead log back into it as it closes, so
that a file put at the path later is not read through the old one's log.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from statemachines.core.errors import StoreError, StoreUnavailable

from .db_errors import LOCK_WAITS

WRITE_OPTION = "endaction_write"
log = logging.getLogger("endaction.store")
#: How long a connection to a database file that went waits for other readers of it before
#: it gives up emptying the file's write-ahead log.
FOLD_WAIT_MS = 2_000


class DatabaseReplaced(StoreError):
    """The SQLite file a store opened went away while the process used it.

    It was deleted, moved away or replaced by another file. Not a `StoreUnavailable`: waiting does
    not bring the file back. The connections still open would go on writing to the unlinked file
    (lost with it when they close), and a new one would find an empty database at the path, or
    another one, and lose track of every resource the old file recorded. So a `Worker` does not back
    off and retry: it stops, like `demo` and every other command, with this one line (exit status
    1), and nothing more is written to whatever the path now names. What was persisted elsewhere
    stays where it is (the VM example's storage directory keeps its images and the id of the
    database they belong to, so a new database at the path is refused on it).

    Attributes:
        path: the database file.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class _FileWatch:
    """Which file an engine's SQLite database is, as (st_dev, st_ino) of its first opening.

    A path can outlive its file: `rm` unlinks the name while open connections keep the inode,
    and `mv other.db FILE` puts another inode under the name. Comparing the path's identity
    with the one first opened costs one stat per checkout, and is the only way to tell.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.identity: tuple[int, int] | None = None

    def _stat(self) -> tuple[int, int] | None:
        """The path's identity now, as (st_dev, st_ino).

        None if nothing is there (or a folder on the way went); the known one when the path
        cannot be looked at, for SQLite's own error to say why.
        """
        try:
            found = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return self.identity
        return found.st_dev, found.st_ino

    def opened(self) -> None:
        """A new connection was made: the first one tells which file the database is."""
        if self.identity is None:
            self.identity = self._stat()
        else:
            self.check()

    def moved(self) -> bool:
        """Whether the path names another file than the one first opened, or none."""
        return self.identity is not None and self._stat() != self.identity

    def check(self) -> None:
        if self.identity is None:
            return
        now = self._stat()
        if now == self.identity:
            return
        what = "deleted (or moved away)" if now is None else "replaced by another file"
        raise DatabaseReplaced(
            self.path, f"the database file {self.path} was {what} while this process used "
            "it: stopped before writing anything more (put the file back to go on; a new "
            "database there would not know what this one recorded)")

    def fold_wal(self, dbapi_connection: Any) -> None:
        """Fold a closing connection's write-ahead log into its moved or deleted file.

        Before a connection to a moved or deleted file closes, its write-ahead log is moved
        into the file and the log emptied. SQLite leaves the log of a moved file behind under
        the old name (`FILE-wal`), and whatever file is put at the path next would be read
        through it: the old database's pages over the new one's. Best effort: another process
        reading the old file may keep the log from being emptied, and is waited for a little
        only (this connection is closing, maybe one of several).
        """
        if not self.moved():
            return
        try:
            dbapi_connection.execute(f"PRAGMA busy_timeout={FOLD_WAIT_MS}")
            busy = dbapi_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            problem = "another process still reads it" if busy else ""
        except sqlite3.Error as err:
            problem = str(err)
        if problem:
            log.warning("could not empty the write-ahead log of the database file %s that "
                        "went (%s): move %s-wal away before using a file put at that path",
                        self.path, problem, self.path)

    def connect_args(self, cargs: list[Any], cparams: dict[str, Any]) -> None:
        """Once the file is known, open it read-write only: never create a new one."""
        if self.identity is None:
            return
        self.check()
        cargs[0] = f"file:{quote(self.path)}?mode=rw"
        cparams["uri"] = True


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
    if database and database != ":memory:" and not parsed.query.get("uri"):
        _watch_file(engine, str(Path(database).absolute()))

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


def _watch_file(engine: Engine, path: str) -> None:
    """Refuse to go on with a database file deleted or replaced under the engine.

    A URL in SQLite's own `file:` URI form is the user's to manage, and not watched.
    """
    watch = _FileWatch(path)

    @event.listens_for(engine, "do_connect")
    def _open_existing(_dialect: Any, _record: Any, cargs: list[Any],
                       cparams: dict[str, Any]) -> None:
        watch.connect_args(cargs, cparams)

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_connection: Any, _record: Any) -> None:
        watch.opened()

    @event.listens_for(engine, "checkout")
    def _still_there(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # Raised here, the pool closes the connection on the old file as it refuses it.
        watch.check()

    @event.listens_for(engine, "close")
    def _closing(dbapi_connection: Any, _record: Any) -> None:
        watch.fold_wal(dbapi_connection)
