"""What `status`, `history` and `trace` share: finding an object, colours, outcome words.

Each view (status_view.py, history_view.py, trace_view.py) has one JSON shape and its text.
Everything is read back from the store (the records and the append-only history), never from
a running engine, so the views work on any database a run left behind, crashed ones included.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from persistence import SqlStore

from ..core.records.records import CommandRecord, TaskRecord
from .errors import UsageProblem

STATE_COLOURS = {
    "ended_success": "green", "cleared": "green",
    "ended_failure": "red", "rollback_failed": "red", "execution_failed": "red",
    "start_failed": "red",
    "rolling_back": "yellow", "clear_failed": "yellow", "ending": "yellow",
    "stepping": "cyan",
}
#: Outcomes that say nothing is left behind, shown in green: a rollback_failed root whose
#: leftovers a cleanup removed is no longer a broken tree.
GOOD_OUTCOMES = ("succeeded", "rolled_back", "rolled_back_natively", "reverted", "cleaned_up")


class UnknownObject(UsageProblem):
    """No command or task has the id: a usage error, naming the id and the database."""

    def __init__(self, object_id: str, url: str) -> None:
        super().__init__(f"no command or task with id {object_id!r} in {url}")


@dataclass(frozen=True)
class Located:
    """Where an id was found: a command, or a task (whose record may be gone), and its root."""

    kind: str  # "command" or "task"
    root_id: str
    command: CommandRecord | None = None
    task: TaskRecord | None = None


def locate(store: SqlStore, object_id: str) -> Located:
    """Find a command or a task by id, from its record or else from its history.

    A task cleared and forgotten still has its history, so it can still be traced.
    """
    command = store.command(object_id)
    if command is not None:
        return Located("command", command.root_id, command=command)
    history = store.history(object_id)
    if not history:
        raise UnknownObject(object_id, store.url)
    _, tasks = store.tree(history[0].root_id)
    task = next((t for t in tasks if t.id == object_id), None)
    return Located(history[0].object_kind, history[0].root_id, task=task)


def coloured(state: str) -> str:
    """The state in its colour; click.echo drops the colour when stdout is not a terminal."""
    colour = STATE_COLOURS.get(state)
    bold = True if state == "rollback_failed" else None
    return click.style(state, fg=colour, bold=bold) if colour else state


def outcome_text(outcome: str) -> str:
    """An outcome that says nothing is left behind in green, one that something is in red."""
    if outcome in GOOD_OUTCOMES:
        return click.style(outcome, fg="green")
    if outcome in ("revert_failed", "child_revert_failed"):
        return click.style(outcome, fg="red", bold=True)
    return outcome
