"""The one policy for code the engine does not own: contain its failures, let the store's through.

A hook that raises is a bug in one command: it must fail that command, visibly, and never stall
the engine or the other roots. A StoreError raised inside a hook is different: the database
failed, the whole tick must roll back, and the command must not be failed for it. Every place
the engine calls user code goes through `contain`, so the two cannot be confused in one place
and not another.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType

from ..errors import ConcurrentModification, StoreError

# What user code may raise and still be only that code's fault: every Exception, and
# asyncio's CancelledError, which is a BaseException since Python 3.8. KeyboardInterrupt,
# SystemExit and the test suite's "the process died" signals are not contained: they must
# stop the engine, as they would stop any program.
USER_FAULTS: tuple[type[BaseException], ...] = (Exception, asyncio.CancelledError)


@dataclass
class Contained:
    """The outcome of one contained call: the exception it raised, if any."""

    error: BaseException | None = None

    @property
    def failed(self) -> bool:
        """Whether the block raised a user fault, now kept in `error`."""
        return self.error is not None

    def describe(self) -> str:
        """The kept error as `Type: message`, for records and reports; empty if none was raised."""
        return describe(self.error) if self.error is not None else ""


class contain:
    """Run the block; keep what it raised, except store errors, which abort the tick.

    For example::

        with contain() as hook:
            command.end_successfully(ctx)
        if hook.failed:
            record.error = f"end_successfully raised {hook.describe()}"

    A class rather than a generator: the engine enters one around every hook it runs, seven
    per disk of a rollback.
    """

    __slots__ = ("outcome",)

    def __enter__(self) -> Contained:
        """A fresh `Contained`, which holds what the block raised once the block has left."""
        self.outcome = Contained()
        return self.outcome

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        """Swallow and keep a user fault; let store errors and process-stopping signals through."""
        if error is None or isinstance(error, StoreError | ConcurrentModification):
            return False  # the database's, not the hook's: the tick rolls back (and retries)
        if isinstance(error, USER_FAULTS):
            self.outcome.error = error
            return True
        return False


def describe(err: BaseException) -> str:
    """`Type: message`, or the type alone when the message is empty."""
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
