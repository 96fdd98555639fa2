"""One object's path through its machine, read back from the transitions history.

The history is the record of what the engine did, so a trace is drawn from it and not from
the object's current status: a command that went through `rolling_back` shows it, in order,
with the time of each step. Rows whose source and destination are the same (an opposite
command being started, a task still running) are events, not moves, and are left out of the
path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ..core.errors import InvalidConfiguration
from ..core.machines.command_machine import COMMAND_MACHINE
from ..core.machines.shared_machine import SharedMachine
from ..core.machines.task_machine import TASK_MACHINE
from ..core.records.records import HistoryEntry
from .drawing import Drawing, drawing_of
from .render import Highlight

MACHINES: dict[str, SharedMachine] = {"command": COMMAND_MACHINE, "task": TASK_MACHINE}


@dataclass(frozen=True)
class Step:
    """One state an object entered: its number in the path, when, and by which trigger."""

    number: int
    state: str
    at: float
    trigger: str
    source: str | None  # None for the row that created the object

    @property
    def time(self) -> str:
        """The moment of the step, as `iso_time` writes it."""
        return iso_time(self.at)


def iso_time(at: float) -> str:
    """A moment (seconds since the epoch) as ISO 8601 text in UTC, to the millisecond."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def path_of(history: Sequence[HistoryEntry]) -> list[Step]:
    """The states an object entered, in order, from its history rows."""
    steps: list[Step] = []
    for entry in history:
        if entry.source == entry.dest:
            continue
        steps.append(Step(len(steps) + 1, entry.dest, entry.at, entry.trigger,
                          entry.source or None))
    return steps


def machine_for(kind: str) -> SharedMachine:
    """The machine that objects of `kind` move through ("command" or "task").

    Any other kind is refused by name (InvalidConfiguration).
    """
    try:
        return MACHINES[kind]
    except KeyError:
        raise InvalidConfiguration(f"no machine draws objects of kind {kind!r}") from None


def trace_drawing(kind: str, object_id: str, steps: Sequence[Step],
                  title: str | None = None) -> tuple[Drawing, Highlight]:
    """The object's machine, titled for it, with the visited states numbered and timed."""
    base = drawing_of(machine_for(kind), name=f"trace-{object_id}")
    drawing = replace(base, title=title or f"{kind} {object_id}")
    visited: dict[str, list[str]] = {}
    for step in steps:
        visited.setdefault(step.state, []).append(f"{step.number}. {step.time[11:23]}")
    edges = [(s.source, s.state) for s in steps if s.source is not None]
    current = steps[-1].state if steps else None
    return drawing, Highlight(visited=visited, edges=edges, current=current)
