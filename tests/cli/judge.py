"""The end-state judge of the chaos tests: everything wrong with a run.

It reads the database and the storage directory alone, never the processes' own reports.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from persistence import SqlStore
from statemachines import CommandStatus, TaskStatus
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from tests.worlds import images_in


def judge(store: SqlStore, storage: Path) -> list[str]:
    """Everything wrong with the end state, read from the database and the files."""
    problems = []
    roots = store.root_ids()
    succeeded = set()
    for root in roots:
        commands, tasks = store.tree(root)
        for command in commands:
            if command.status not in TERMINAL_COMMAND_STATES:
                problems.append(f"command {command.type} {command.id} is {command.status}")
        problems += [f"task {t.verb} {t.id} is {t.status}" for t in tasks
                     if t.status != TaskStatus.CLEARED]
        ends = Counter(h.object_id for h in store.history_of_root(root)
                       if h.object_kind == "command" and h.trigger == "end")
        problems += [f"command {i} ended {n} times" for i, n in ends.items() if n > 1]
        if next(c.status for c in commands if c.id == root) == CommandStatus.ENDED_SUCCESS:
            succeeded.add(root)
    owners = {row.id: row.root_id for row in images_in(store)}
    problems += [f"inventory row {image} belongs to no created VM"
                 for image, owner in owners.items() if owner not in succeeded]
    for path in (storage / "images").glob("*.img"):
        if owners.get(path.stem) not in succeeded:
            problems.append(f"file {path.name} belongs to no created VM")
    problems += [f"journal entry {p.name} left over"
                 for p in [*(storage / "tasks").glob("*.json"), *(storage / "tasks").glob("*.tmp")]]
    problems += [f"root {root} still leased to {owner or 'nobody'}"
                 for root, owner, _ in store.leases()]
    return problems
