"""What `status`, `history` and `trace` show: one JSON shape per view, and its text.

Everything is read back from the store (the records and the append-only history), never from
a running engine, so the views work on any database a run left behind, crashed ones included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from persistence import SqlStore

from ..core.reasons import ExecutionReason
from ..core.records import CommandRecord, HistoryEntry, TaskRecord
from ..diagrams.trace import iso_time, path_of
from .errors import UsageProblem

STATE_COLOURS = {
    "ended_success": "green", "cleared": "green",
    "ended_failure": "red", "rollback_failed": "red", "execution_failed": "red",
    "start_failed": "red",
    "rolling_back": "yellow", "clear_failed": "yellow", "ending": "yellow",
}


class UnknownObject(UsageProblem):
    def __init__(self, object_id: str, url: str) -> None:
        super().__init__(f"no command or task with id {object_id!r} in {url}")


@dataclass(frozen=True)
class Located:
    kind: str  # "command" or "task"
    root_id: str
    command: CommandRecord | None = None
    task: TaskRecord | None = None


def locate(store: SqlStore, object_id: str) -> Located:
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


# ---------------------------------------------------------------------------------- status
def status_view(store: SqlStore, top: CommandRecord) -> dict[str, Any]:
    """The subtree under `top`: its tasks, its children and the opposite commands undoing them."""
    commands, tasks = store.tree(top.root_id)
    by_parent: dict[str | None, list[CommandRecord]] = {}
    for command in commands:
        by_parent.setdefault(command.parent_id, []).append(command)
    tasks_of: dict[str, list[TaskRecord]] = {}
    for task in tasks:
        tasks_of.setdefault(task.command_id, []).append(task)

    def node(command: CommandRecord) -> dict[str, Any]:
        return {
            "id": command.id, "type": command.type, "status": command.status,
            "execution_reason": str(command.execution_reason),
            "compensates": command.parent_id
            if command.execution_reason == ExecutionReason.ROLLBACK_FLOW else None,
            "outcome": command.outcome, "error": command.error,
            "entity": f"{command.entity_type}:{command.entity_id}" if command.entity_id else None,
            "tasks": [{"id": t.id, "verb": t.verb, "status": t.status,
                       "host_status": t.host_status, "host_result": t.host_result,
                       "message": t.message} for t in tasks_of.get(command.id, ())],
            "children": [node(c) for c in by_parent.get(command.id, ())],
        }

    current = next(c for c in commands if c.id == top.id)
    return {"database": store.url, "command": node(current)}


def render_status(view: dict[str, Any]) -> str:
    lines: list[str] = []

    def describe(command: dict[str, Any]) -> str:
        parts = [command["type"], command["id"]]
        if command["entity"]:
            parts.append(command["entity"])
        if command["compensates"]:
            parts.append("[ROLLBACK_FLOW]")
        parts.append(coloured(command["status"]))
        if command["outcome"]:
            parts.append(f"({command['outcome']})")
        if command["error"]:
            parts.append(f"error: {command['error']}")
        return " ".join(parts)

    def task_line(task: dict[str, Any]) -> str:
        host = "/".join(x for x in (task["host_status"], task["host_result"]) if x)
        return f"task {task['verb']} {task['id']} {coloured(task['status'])}" + (
            f" (host {host})" if host else "")

    def walk(command: dict[str, Any], prefix: str) -> None:
        items = [("task", t) for t in command["tasks"]] + \
                [("command", c) for c in command["children"]]
        for index, (kind, item) in enumerate(items):
            last = index == len(items) - 1
            text = task_line(item) if kind == "task" else describe(item)
            lines.append(f"{prefix}{'└─' if last else '├─'} {text}")
            if kind == "command":
                walk(item, prefix + ("   " if last else "│  "))

    lines.append(describe(view["command"]))
    walk(view["command"], "")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- history
def history_row(entry: HistoryEntry) -> dict[str, Any]:
    return {"kind": entry.object_kind, "object_id": entry.object_id, "trigger": entry.trigger,
            "source": entry.source or None, "dest": entry.dest, "at": iso_time(entry.at),
            "detail": entry.detail}


def history_view(store: SqlStore, object_id: str, whole_tree: bool) -> dict[str, Any]:
    found = locate(store, object_id)
    rows = store.history_of_root(found.root_id) if whole_tree else store.history(object_id)
    return {"database": store.url, "id": object_id, "kind": found.kind,
            "root_id": found.root_id, "rows": [history_row(e) for e in rows]}


def render_history(view: dict[str, Any]) -> str:
    header = ("time (UTC)", "kind", "object", "trigger", "source -> dest", "detail")
    table = [header] + [
        (r["at"][11:23], r["kind"], r["object_id"], r["trigger"],
         f"{r['source'] or '-'} -> {r['dest']}", r["detail"] or "")
        for r in view["rows"]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  " + row[-1]
        for row in table).rstrip()


# ----------------------------------------------------------------------------------- trace
def trace_view(store: SqlStore, object_id: str) -> dict[str, Any]:
    found = locate(store, object_id)
    steps = path_of(store.history(object_id))
    status: str
    if found.command is not None:
        what, status = found.command.type, found.command.status
    else:
        what = found.task.verb if found.task else "task"
        status = found.task.status if found.task else (steps[-1].state if steps else "")
    return {
        "database": store.url, "id": object_id, "kind": found.kind, "type": what,
        "status": status, "root_id": found.root_id,
        "path": [{"step": s.number, "state": s.state, "at": s.time, "trigger": s.trigger,
                  "from": s.source} for s in steps],
        "files": [],
    }


def render_trace(view: dict[str, Any]) -> str:
    lines = [f"{view['kind']} {view['type']} {view['id']}: {coloured(view['status'])}"]
    for step in view["path"]:
        came = f"{step['from']} --{step['trigger']}-->" if step["from"] else step["trigger"]
        lines.append(f"  {step['step']:>2}. {step['at'][11:23]}  {came} {coloured(step['state'])}")
    lines += [f"wrote {path}" for path in view["files"]]
    return "\n".join(lines)
