"""Database errors as endaction errors that name the database and what was being done.

Raised as StoreError/StoreUnavailable at the call site, so that a hook which catches its own
exceptions (the engine contains a raising hook to that one command) can still tell a database
fault, which must abort the whole tick, from a bug in the hook.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from statemachines.core.errors import (
    ConcurrentModification,
    EndactionError,
    StoreError,
    StoreUnavailable,
    SubmitKeyTaken,
)

from .schema import SUBMIT_KEY_INDEX

# SQLSTATEs of a transaction the database aborted because of another one (deadlock detected,
# serialization failure): not a fault, a lost race, which the engine retries after a reload.
_LOST_RACE = {"40P01", "40001"}
_UNIQUE_VIOLATION = "23505"
#: How long SQLite waits for another writer's lock, by database (as errors name it), in ms:
#: set by `connect`, so that "database is locked" says how long it waited and how to change it.
LOCK_WAITS: dict[str, int] = {}
LOCK_WAIT_ENVVAR = "ENDACTION_LOCK_TIMEOUT"
#: How SQLite names the index of submit keys when it refuses a row: by its column (or, some
#: versions, for some indexes, by its name); its error carries no constraint name to read.
_SQLITE_KEY_TAKEN = ("UNIQUE constraint failed: commands.submit_key",
                     f"UNIQUE constraint failed: index '{SUBMIT_KEY_INDEX}'")


def translate(err: DBAPIError, database: str, doing: str) -> EndactionError:
    """The endaction error for a database error that SQLAlchemy raised.

    Its message names `database` and what it was `doing`. A lost race is a
    ConcurrentModification and a taken submit key a SubmitKeyTaken; otherwise an operational or
    interface error (the connection, the server) is StoreUnavailable, and anything else
    StoreError.
    """
    return translate_driver(err.orig or err, database, doing,
                            unavailable=isinstance(err, OperationalError | InterfaceError))


def translate_driver(orig: BaseException, database: str, doing: str,
                     unavailable: bool) -> EndactionError:
    """The same, for an error of the driver itself, as SQLAlchemy's `orig` holds it."""
    text = str(orig).strip()
    first_line = text.splitlines()[0] if text else ""
    message = f"database {database} failed to {doing}: {type(orig).__name__}: {first_line}"
    if getattr(orig, "sqlstate", None) in _LOST_RACE:
        return ConcurrentModification(f"{message} (another engine's transaction won; "
                                      "retried after a reload)")
    if isinstance(orig, sqlite3.OperationalError) and "locked" in first_line:
        waited = LOCK_WAITS.get(database)
        message += (f" (another process held the database's write lock for more than "
                    f"{'its lock wait' if waited is None else f'{waited / 1000:g} s'}: a "
                    "worker, demo, resume or cleanup on the same file, or a long transaction "
                    f"elsewhere; {LOCK_WAIT_ENVVAR}=SECONDS waits longer)")
    if _submit_key_taken(orig):
        return SubmitKeyTaken(f"{message} (another client submitted a root under the same "
                              "submit key since this one looked)")
    return (StoreUnavailable if unavailable else StoreError)(message)


def _submit_key_taken(orig: BaseException) -> bool:
    """Whether the database refused a write by the unique index of submit keys.

    That is a lost race, which the submit answers with the winner's root, not a fault.
    """
    if getattr(orig, "sqlstate", None) == _UNIQUE_VIOLATION:
        diag = getattr(orig, "diag", None)
        return getattr(diag, "constraint_name", None) == SUBMIT_KEY_INDEX
    return isinstance(orig, sqlite3.IntegrityError) and any(
        text in str(orig) for text in _SQLITE_KEY_TAKEN)


@contextmanager
def guarded(database: str, doing: str) -> Iterator[None]:
    """Raise any database error of the block as the endaction error `translate` makes of it.

    The original error stays as its cause, so the traceback keeps the driver's own words.
    """
    try:
        yield
    except DBAPIError as err:
        raise translate(err, database, doing) from err
