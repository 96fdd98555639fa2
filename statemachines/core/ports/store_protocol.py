"""The small protocol the engine needs from a store; `persistence` implements it.

`statemachines` never imports `persistence`: the engine is handed any object that follows
these protocols, which keeps the domain testable and the SQL in one package.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from ..records.records import ActiveState, CommandRecord, HistoryEntry, HistoryPath, TaskRecord
from ..records.revert_state import ResourceRef, ResourceRevert
from .ledger import Ledger

L = TypeVar("L", bound=Ledger)


class StoreTransaction(Protocol):
    """One engine tick's transaction: reads and claims are immediate, record writes batched."""

    #: Recorded with the history the transaction writes: the worker's lease name or the
    #: single engine's `host:pid` (None: a client's submit). Set by the engine.
    actor: str | None

    def ledger(self, kind: type[L]) -> L:
        """The user's ledger of that class, bound to this transaction (built on first use)."""

    def resource_exists(self, resource: ResourceRef) -> bool | None:
        """What the ledger registered for the resource's type says; None without one."""

    def renew_leases(self, owner: str, roots: Collection[str], until: float) -> set[str]:
        """Extend `owner`'s leases on `roots` to `until`; return the roots still leased to it.

        The lease rows stay locked (taken in root order) until the transaction ends. A root
        missing from the answer was taken over by another worker after this one's lease lapsed:
        the tick must not write its tree.
        """

    def claim_roots(self, owner: str, now: float, until: float, limit: int,
                    parked_too: bool = False, only: Collection[str] | None = None
                    ) -> list[str]:
        """`Store.claim_roots` inside this transaction (a worker claims in its tick's).

        The rows stay locked until the transaction ends; with `only`, the claim is among those
        roots only.
        """

    def load_active(self, roots: Collection[str]) -> ActiveState:
        """The unfinished commands and tasks of `roots`, just claimed in this transaction.

        Their lease rows are locked: nobody else writes those trees until it commits.
        """

    def roots_by_keys(self, keys: Collection[str]) -> dict[str, CommandRecord]:
        """The roots these submit keys name, by key, as this transaction sees them.

        A key nobody used is missing from the answer.
        """

    def put_setting(self, key: str, value: str) -> None:
        """Set a deployment setting (an operator's request, among others)."""

    def take_setting(self, key: str) -> bool:
        """Delete the setting; True only for the transaction that did (a claim)."""

    def open_roots(self, roots: Collection[str], owner: str | None, until: float) -> None:
        """Give roots that have work again a lease row each, where they have none.

        Such roots are a new root, or a cleanup's opposite commands; the rows are held by
        `owner` (None: free for any worker to claim).
        """

    def park_roots(self, roots: Collection[str], owner: str, until: float) -> None:
        """Give `owner`'s leases on `roots` back, claimable by anyone from `until` on."""

    def finish_roots(self, roots: Collection[str]) -> None:
        """Roots whose trees have no work left: their lease rows go."""

    def release_leases(self, owner: str) -> int:
        """Give back every lease `owner` holds; returns how many."""

    def claim_ends(self, command_ids: Sequence[str]) -> set[str]:
        """Atomically move commands from waiting/execution_failed to ending; return those moved.

        This is the durable AttemptingEndAction guard: of two engines claiming the same
        command, exactly one sees it in the returned set.
        """

    def prefetch(self, resources: Iterable[ResourceRef]) -> None:
        """A hint: these resources are about to be read; load them in bulk if that helps."""

    def tasks_of(self, command_id: str) -> list[TaskRecord]:
        """A command's tasks as this transaction sees them.

        The failure path's hooks read them after the engine forgot the cleared ones.
        """

    def children_of(self, command_id: str) -> list[CommandRecord]:
        """A command's children as this transaction sees them."""

    def commands_of_root(self, root_id: str) -> list[CommandRecord]:
        """Every command of a root's tree as this transaction sees them."""

    def reverts_of(self, owners: Collection[str]) -> list[ResourceRevert]:
        """The revert states of the resources these commands made, this tick's writes included."""

    def get_revert(self, resource: ResourceRef, owner: str) -> ResourceRevert:
        """The revert state of `owner`'s resource, this tick's puts included; none if no row.

        The loop guards read it before every revert, so a store should answer it from what
        `prefetch` loaded.
        """

    def put_revert(self, revert: ResourceRevert) -> None:
        """Replace a revert state; it commits or rolls back with the tick."""

    def pending_cancels(self) -> list[tuple[str, str, str]]:
        """Cancel requests not yet acted on: (root id, reason, the root's status)."""

    def drop_cancel(self, root_id: str) -> None:
        """The request was acted on (or its root had ended): remove it."""

    def failed_reverts(self) -> list[tuple[ResourceRevert, CommandRecord]]:
        """Resources given up on (revert_failed), each with the command that owns it."""

    def hold_root(self, root_id: str, at: float, error: str) -> None:
        """Stop engines from working on a root whose work made the engine fail.

        Its rows stay as they are, and `load_active` leaves them out until the root is released.
        """

    def append_history(self, history: Sequence[HistoryPath]) -> None:
        """Write history rows only.

        A tick hands its history over in chunks, at any moment: nothing references the rows and
        nothing in the tick reads them back.
        """

    def write(
        self,
        new_commands: Sequence[CommandRecord],
        changed_commands: Sequence[CommandRecord],
        new_tasks: Sequence[TaskRecord],
        changed_tasks: Sequence[TaskRecord],
        history: Sequence[HistoryPath],
    ) -> None:
        """Batch-write the tick's records.

        Raise ConcurrentModification on a version clash, and SubmitKeyTaken if a new root's
        `submit_key` names another root already (keys are unique: one written by a transaction
        this one could not see yet).
        """


class WakeSource(Protocol):
    """A worker's ear for work that other transactions made.

    Such work is a root submitted or given back, or a cancel or cleanup requested. The worker
    waits on this instead of sleeping, and still polls.
    """

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Sleep up to `timeout` s; True as soon as work was made, soon after `stop` is set."""

    def close(self) -> None:
        """Stop listening; the worker closes its ear when it stops."""


class Store(Protocol):
    """Where an engine keeps commands, tasks and their history (`persistence.SqlStore`).

    Implement it to put the engine on another database: `load_active` is read at start-up and
    after a rolled-back tick, `transaction` wraps every tick (reads and claims immediate,
    writes batched), and the rest is the read side for reports and operators.
    """

    def load_active(self, roots: Collection[str] | None = None) -> ActiveState:
        """Every command and task that is not over, outside held roots.

        With `roots`, only theirs are loaded (a worker loads the trees it leased).
        """

    def claim_roots(self, owner: str, now: float, until: float, limit: int,
                    parked_too: bool = False) -> list[str]:
        """Lease up to `limit` free or lapsed roots to `owner` until `until`, and return them.

        The claim is one transaction, skipping held roots and rows another worker is claiming;
        with `parked_too`, free ones not yet due are claimed as well.
        """

    def reclaim_roots(self, owner: str, until: float) -> list[str]:
        """Extend every lease `owner` still holds and return its roots.

        A worker restarted under the same name so takes its roots back at once.
        """

    def release_leases(self, owner: str) -> int:
        """Give back every lease `owner` holds (a worker stopping); returns how many."""

    def leases(self) -> list[tuple[str, str | None, float]]:
        """Every root with work: (root id, lease owner or None, lease expiry)."""

    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """One tick's transaction: committed when the block ends, rolled back if it raises."""

    # Read side, for reports and the CLI; never used on the engine's hot path.
    def task_versions(self, task_ids: Sequence[str]) -> dict[str, int]:
        """Persisted versions of these tasks: checked before the agent is asked to start them."""

    def last_root_id(self) -> str | None:
        """The id of the root created last, or None: what `status` and `resume` default to."""

    def list_roots(self, *, status: str | None = None, type_name: str | None = None,
                   since: float | None = None, before: tuple[float, str] | None = None,
                   limit: int = 50) -> list[CommandRecord]:
        """Root commands newest first (created_at, then id, descending), at most `limit`.

        `limit` is at least 1. The roots are of that status, of that type, created at `since`
        or later, and after `before`, the (created_at, id) of the previous page's last root
        (keyset paging: a late page costs what the first does).
        """

    def root_by_key(self, key: str) -> CommandRecord | None:
        """The root submitted under this submit key, if one was."""

    def command(self, command_id: str) -> CommandRecord | None:
        """The command of that id as persisted, or None if there is none."""

    def tree(self, root_id: str) -> tuple[list[CommandRecord], list[TaskRecord]]:
        """Every command and task of a root's tree as persisted, each list in creation order."""

    def history(self, object_id: str) -> list[HistoryEntry]:
        """Every transition of one command or task, in the order it took them."""

    def history_of_root(self, root_id: str) -> list[HistoryEntry]:
        """Every transition of a root's tree: each object's in the order it took them.

        They come tick after tick. Within one tick (one moment: the steps share their time) the
        steps come object by object, in the order of each object's first step in that tick.
        """

    def held_roots(self) -> dict[str, str]:
        """Held roots and the error that held each."""

    def request_cancel(self, root_id: str, reason: str, at: float) -> None:
        """Ask whichever engine runs this root to cancel it; asking twice is asking once."""

    def cancel_requests(self) -> dict[str, str]:
        """Cancel requests not yet acted on, by root, with their reasons."""

    def reverts(self) -> Iterator[ResourceRevert]:
        """Every revert state persisted: what `cleanup` and the end-of-run reports read."""

    def setting(self, key: str) -> str | None:
        """A deployment setting, or None."""

    def put_setting(self, key: str, value: str) -> None:
        """Set a deployment setting, in a transaction of its own."""

    def database_time(self) -> float:
        """Seconds since the epoch by the database's own clock.

        It is the time every worker's leases and deadlines are measured on (`SteadyClock` reads
        it now and then).
        """

    def wakeups(self) -> WakeSource:
        """A new ear for work made by other transactions (a worker's, closed when it stops).

        It hears this process's work at least; on a database that can notify (PostgreSQL),
        other processes' too.
        """

    def dispose(self) -> None:
        """Close every connection; a crashed engine's store is disposed, a new one opened."""
