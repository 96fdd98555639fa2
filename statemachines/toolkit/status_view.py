"""`status`: a root's tree as JSON, and as the indented text an operator reads."""

from __future__ import annotations

import json
from typing import Any

from persistence import SqlStore

from ..core.machines.reasons import ExecutionReason
from ..core.records.frozen_json import thaw
from ..core.records.records import CommandRecord, TaskRecord, resources_of
from .inspect_views import coloured, outcome_text

#: How much of an output a line of text shows.
OUTPUT_SHOWN = 120


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
    """The tree as indented lines, tasks before child commands, coloured by state."""
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


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= OUTPUT_SHOWN else text[:OUTPUT_SHOWN - 1] + "…"
