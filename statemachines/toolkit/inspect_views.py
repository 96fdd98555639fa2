"""What `status`, `history` and `trace` show: one JSON shape per view, and its text.

Everything is read back from the store (the records and the append-only history), never from
a running engine, so the views work on any database a run left behind, crashed ones included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import click

from persistence import SqlStore

from ..core.machines.reasons import ExecutionReason
from ..core.records.frozen_json import thaw
from ..core.records.records import CommandRecord, HistoryEntry, TaskRecord, resources_of
from ..diagrams.trace import iso_time, path_of
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
#: How much of an output a line of text shows.
OUTPUT_SHOWN = 120


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


def outcome_text(outcome: str) -> str:
    """An outcome that says nothing is left behind in green, one that something is in red."""
    if outcome in GOOD_OUTCOMES:
        return click.style(outcome, fg="green")
    if outcome in ("revert_failed", "child_revert_failed"):
        return click.style(outcome, fg="red", bold=True)
    return outcome


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= OUTPUT_SHOWN else text[:OUTPUT_SHOWN - 1] + "…"


# ---------------------------------------------------------------------------------- status
def status_view(store: SqlStore, top: CommandRecord) -> dict[str, Any]:
    """The subtree under `top`: its tasks, its children and the opposite commands reverting them."""
    commands, tasks = store.tree(top.root_id)
    by_parent: dict[str | None, list[CommandRecord]] = {}
    for command in commands:
        by_parent.setdefault(command.parent_id, []).append(command)
    tasks_of: dict[str, list[TaskRecord]] = {}
    for task in tasks:
        tasks_of.setdefault(task.command_id, []).append(task)

    reverts = {(str(r.resource), r.owner): r for r in store.reverts()} if any(
        c.resources or c.entity_id for c in commands) else {}

    def node(command: CommandRecord) -> dict[str, Any]:
        made = resources_of(command)
        return {
            "id": command.id, "type": command.type, "status": command.status,
            "execution_reason": str(command.execution_reason),
            "compensates": command.parent_id
            if command.execution_reason == ExecutionReason.ROLLBACK_FLOW else None,
            "outcome": command.outcome, "error": command.error,
            "own_work_succeeded": command.own_work_succeeded, "step": command.step,
            "output": thaw(command.output),
            "entity": f"{command.entity_type}:{command.entity_id}" if command.entity_id else None,
            "resources": [{"resource": str(r), "revert_state": str(reverts[(str(r), command.id)]
                                                                    .state)
                           if (str(r), command.id) in reverts else None} for r in made],
            "tasks": [{"id": t.id, "verb": t.verb, "status": t.status, "step": t.step,
                       "attempt": t.attempt, "max_attempts": t.max_attempts,
                       "retried": t.retried, "host_status": t.host_status,
                       "host_result": t.host_result, "message": t.message,
                       "output": thaw(t.output)} for t in tasks_of.get(command.id, ())],
            "children": [node(c) for c in by_parent.get(command.id, ())],
        }

    current = next(c for c in commands if c.id == top.id)
    return {"database": store.url, "command": node(current)}


def _command_line(command: dict[str, Any]) -> str:
    parts = [command["type"], command["id"]]
    if command["entity"]:
        parts.append(command["entity"])
    if command["compensates"]:
        parts.append("[ROLLBACK_FLOW]")
    parts.append(coloured(command["status"]))
    if command["outcome"]:
        parts.append(f"({outcome_text(command['outcome'])})")
    if command["step"] > 1:
        parts.append(f"step {command['step']}")
    if command["error"]:
        parts.append(f"error: {command['error']}")
    if command["output"] is not None:
        parts.append(f"output {_short(command['output'])}")
    return " ".join(parts)


def _task_line(task: dict[str, Any]) -> str:
    host = "/".join(x for x in (task["host_status"], task["host_result"]) if x)
    if host and task["message"] and task["host_result"] != "success":
        host += f": {task['message']}"
    line = f"task {task['verb']} {task['id']} {coloured(task['status'])}" + (
        f" (host {host})" if host else "")
    if task["max_attempts"] > 1:
        line += f" attempt {task['attempt']} of {task['max_attempts']}" + (
            ", retried" if task["retried"] else "")
    if task["output"] is not None:
        line += f" output {_short(task['output'])}"
    return line


def render_status(view: dict[str, Any]) -> str:
    lines: list[str] = []

    def walk(command: dict[str, Any], prefix: str) -> None:
        items = [("task", t) for t in command["tasks"]] + \
                [("command", c) for c in command["children"]]
        for index, (kind, item) in enumerate(items):
            last = index == len(items) - 1
            text = _task_line(item) if kind == "task" else _command_line(item)
            lines.append(f"{prefix}{'└─' if last else '├─'} {text}")
            if kind == "command":
                walk(item, prefix + ("   " if last else "│  "))

    lines.append(_command_line(view["command"]))
    walk(view["command"], "")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- history
def history_row(entry: HistoryEntry) -> dict[str, Any]:
    return {"kind": entry.object_kind, "object_id": entry.object_id, "trigger": entry.trigger,
            "source": entry.source or None, "dest": entry.dest, "at": iso_time(entry.at),
            "detail": entry.detail, "by": entry.actor}


def history_view(store: SqlStore, object_id: str, whole_tree: bool) -> dict[str, Any]:
    found = locate(store, object_id)
    rows = store.history_of_root(found.root_id) if whole_tree else store.history(object_id)
    return {"database": store.url, "id": object_id, "kind": found.kind,
            "root_id": found.root_id, "rows": [history_row(e) for e in rows]}


def render_history(view: dict[str, Any]) -> str:
    header = ("time (UTC)", "by", "kind", "object", "trigger", "source -> dest", "detail")
    table = [header] + [
        (r["at"][11:23], r["by"] or "-", r["kind"], r["object_id"], r["trigger"],
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
    history = store.history(object_id)
    steps = path_of(history)
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
        # What happened to it without moving it: compensations started, tasks retried,
        # cancels and cleanups acted on.
        "events": [{"at": iso_time(e.at), "event": e.trigger, "detail": e.detail}
                   for e in history if e.source == e.dest and e.source],
        "files": [],
    }


def render_trace(view: dict[str, Any]) -> str:
    lines = [f"{view['kind']} {view['type']} {view['id']}: {coloured(view['status'])}"]
    for step in view["path"]:
        came = f"{step['from']} --{step['trigger']}-->" if step["from"] else step["trigger"]
        lines.append(f"  {step['step']:>2}. {step['at'][11:23]}  {came} {coloured(step['state'])}")
    if view["events"]:
        lines.append("  events:")
        lines += [f"      {e['at'][11:23]}  {e['event']}: {e['detail'] or ''}".rstrip()
                  for e in view["events"]]
    lines += [f"wrote {path}" for path in view["files"]]
    return "\n".join(lines)
