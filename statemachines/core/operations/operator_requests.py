"""What an operator may ask of the engines working on a database, from any process.

A request is a row, not a call: the engine that runs the root acts on it at its next tick,
inside its own transaction, so the request never races the engine's writes. It is validated
here, where it enters, so a mistyped id is an error now rather than a request nobody acts on.
"""

from __future__ import annotations

from ..errors import NotCancellable
from ..machines.command_machine import COMMAND_MACHINE
from ..ports.store_protocol import Store


def request_cancel(store: Store, root_id: str, reason: str, at: float) -> None:
    """Ask whichever engine runs `root_id` to cancel it (see `Engine.cancel`).

    Raises NotCancellable for an unknown id, a command that is not a root, or a root that
    has already ended.
    """
    record = store.command(root_id)
    if record is None:
        raise NotCancellable(f"no command with id {root_id!r}")
    if record.parent_id is not None:
        raise NotCancellable(f"{root_id} is a {record.type}, not a root: cancel its root "
                             f"{record.root_id}")
    if COMMAND_MACHINE.is_terminal(record.status):
        raise NotCancellable(f"root {root_id} ({record.type}) has already ended {record.status}")
    held = store.held_roots().get(root_id)
    if held is not None:
        raise NotCancellable(f"root {root_id} is held, so no engine would act on a cancel "
                             f"({held}): release it first")
    store.request_cancel(root_id, reason, at)


#: The setting that holds a cleanup request (its time) until a worker takes it.
CLEANUP_REQUEST = "endaction.cleanup_request"


def request_cleanup(store: Store, at: float) -> None:
    """Ask the workers for a cleanup (see `Engine.serve_cleanup_request`).

    The first worker to look takes the request, in a transaction of its own, so exactly one
    performs it; asking twice before one looks is asking once.
    """
    store.put_setting(CLEANUP_REQUEST, repr(at))
