"""Database errors as endaction errors that name the database and what was being done.

Raised as StoreError/StoreUnavailable at the call site, so that a hook which catches its own
exceptions (the engine contains a raising hook to that one command) can still tell a database
fault, which must abort the whole tick, from a bug in the hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from statemachines.core.errors import (
    ConcurrentModification,
    EndactionError,
    StoreError,
    StoreUnavailable,
)

# SQLSTATEs of a transaction the database aborted because of another one (deadlock detected,
# serialization failure): not a fault, a lost race, which the engine retries after a reload.
_LOST_RACE = {"40P01", "40001"}


def translate(err: DBAPIError, database: str, doing: str) -> EndactionError:
    return translate_driver(err.orig or err, database, doing,
                            unavailable=isinstance(err, OperationalError | InterfaceError))


def translate_driver(orig: BaseException, database: str, doing: str,
                     unavailable: bool) -> EndactionError:
    """The same, for an error of the driver itself (a call made below SQLAlchemy, as the
    history's COPY on PostgreSQL is)."""
    text = str(orig).strip()
    first_line = text.splitlines()[0] if text else ""
    message = f"database {database} failed to {doing}: {type(orig).__name__}: {first_line}"
    if getattr(orig, "sqlstate", None) in _LOST_RACE:
        return ConcurrentModification(f"{message} (another engine's transaction won; "
                                      "retried after a reload)")
    return (StoreUnavailable if unavailable else StoreError)(message)


@contextmanager
def guarded(database: str, doing: str) -> Iterator[None]:
    try:
        yield
    except DBAPIError as err:
        raise translate(err, database, doing) from err
