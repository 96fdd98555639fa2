"""Everything persisted about a set of roots, read back from the store after a step.

The invariants and the termination measure are computed from this and nothing else: what
survives a crash is what the database holds, so that is what the proofs are about.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..core.ports.store_protocol import Store
from ..core.records.records import CommandRecord, HistoryEntry, TaskRecord
from ..core.records.revert_state import ResourceRef, ResourceRevert

RevertKey = tuple[ResourceRef, str]


@dataclass(frozen=True)
class Snapshot:
    """The persisted state of a run's roots: what the invariants and the measure read."""

    commands: dict[str, CommandRecord]
    tasks: dict[str, TaskRecord]
    history: list[HistoryEntry]
    reverts: dict[RevertKey, ResourceRevert]
    # Roots with a cancel request the engine has not acted on yet.
    cancel_requests: frozenset[str] = frozenset()

    def depth(self, command: CommandRecord) -> int:
        """How far below its root a command is, among the commands of this snapshot."""
        depth = 0
        while command.parent_id is not None:
            parent = self.commands.get(command.parent_id)
            if parent is None:
                break
            command, depth = parent, depth + 1
        return depth


def take_snapshot(store: Store, root_ids: Iterable[str]) -> Snapshot:
    """Everything the store holds about these roots, read now."""
    commands: dict[str, CommandRecord] = {}
    tasks: dict[str, TaskRecord] = {}
    history: list[HistoryEntry] = []
    for root_id in root_ids:
        root_commands, root_tasks = store.tree(root_id)
        commands.update((c.id, c) for c in root_commands)
        tasks.update((t.id, t) for t in root_tasks)
        history += store.history_of_root(root_id)
    reverts = {(r.resource, r.owner): r for r in store.reverts()}
    return Snapshot(commands, tasks, history, reverts, frozenset(store.cancel_requests()))
