"""The end-of-run reports of `resume`, `cleanup` and a domain's demo, and their exit statuses.

A script reads the exit status from them. An application may give its own root report
(`App.report`); whichever is used, the exit status comes from the same keys, so that every
application's `resume` means the same by 0, 3 and 5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from persistence import SqlStore

from ..core.engine.application import App
from ..core.machines.command_machine import TERMINAL_COMMAND_STATES, CommandStatus, Outcome
from ..core.machines.task_machine import TaskStatus
from ..core.ports.agent_protocol import Agent
from ..core.records.frozen_json import thaw
from ..core.records.revert_state import ResourceRevert, RevertState
from .errors import EXIT_LEFT_BEHIND, EXIT_OK, EXIT_ROLLED_BACK


def root_report(app: App, store: SqlStore, agents: Mapping[str, Agent],
                root_id: str) -> dict[str, Any]:
    """The application's report of `root_id`, or the generic one."""
    if app.report is not None:
        return app.report(store, agents, root_id)
    return generic_report(store, root_id, app.leftovers(store, agents))


def generic_report(store: SqlStore, root_id: str, leftovers: Sequence[str]) -> dict[str, Any]:
    """The tree of `root_id` as JSON: what every application's report holds at least."""
    commands, tasks = store.tree(root_id)
    root = next(c for c in commands if c.id == root_id)
    return {
        "root": {"id": root.id, "type": root.type, "status": root.status,
                 "outcome": root.outcome, "error": root.error,
                 "held": store.held_roots().get(root.id)},
        "commands": [
            {"id": c.id, "type": c.type, "status": c.status, "parent_id": c.parent_id,
             "execution_reason": str(c.execution_reason), "outcome": c.outcome,
             "entity": f"{c.entity_type}:{c.entity_id}" if c.entity_id else None,
             "error": c.error, "own_work_succeeded": c.own_work_succeeded, "step": c.step}
            for c in commands
        ],
        "tasks": [
            {"id": t.id, "command_id": t.command_id, "verb": t.verb, "status": t.status,
             "host_status": t.host_status, "host_result": t.host_result, "message": t.message,
             "attempt": t.attempt, "retried": t.retried, "output": thaw(t.output)}
            for t in tasks
        ],
        "leftovers": list(leftovers),
    }


def render_generic(report: dict[str, Any]) -> str:
    """The generic report as text: the root and its cause, a hold, every other command, leftovers.

    It reads only the keys `generic_report` writes, so it renders the report of an
    application that has no `render_report` of its own.
    """
    root = report["root"]
    lines = [f"{root['type']} {root['id']}: {root['status']}"
             + (f" ({root['outcome']})" if root.get("outcome") else "")]
    if root.get("error"):
        lines.append(f"  cause: {root['error']}")
    if root.get("held"):
        lines.append(f"  HELD: the engine failed on this root and stopped working on it: "
                     f"{root['held']} (fix the cause, then `endaction release {root['id']}`)")
    for command in report["commands"]:
        if command["id"] == root["id"]:
            continue
        reason = " [ROLLBACK_FLOW]" if command["execution_reason"] == "ROLLBACK_FLOW" else ""
        outcome = f" ({command['outcome']})" if command["outcome"] else ""
        lines.append(f"  {command['type']}{reason} {command['status']}{outcome}")
    lines.append("leftovers: " + (", ".join(report["leftovers"]) or "none"))
    return "\n".join(lines)


def render_report(app: App, report: dict[str, Any]) -> str:
    """The report as text, by the application's own renderer if it has one."""
    return (app.render_report or render_generic)(report)


def run_exit_status(report: dict[str, Any]) -> int:
    """The exit status a script reads from a root's report: 0, 3 or 5.

    0: the root succeeded, nothing left; 5: it failed or was cancelled and everything it made
    was reverted; 3: it did not end, is held, or left something behind.
    """
    root = report["root"]
    finished = root["status"] in TERMINAL_COMMAND_STATES
    uncleared = any(t["status"] != TaskStatus.CLEARED for t in report["tasks"])
    if not finished or root.get("held") or report["leftovers"] or uncleared:
        return EXIT_LEFT_BEHIND
    return ending_status(root["status"], root.get("outcome"))


def ending_status(status: str, outcome: str | None) -> int:
    """The exit status of a command that ended: success, clean rollback, or left behind."""
    if status == CommandStatus.ENDED_SUCCESS:
        return EXIT_OK
    if status == CommandStatus.ROLLBACK_FAILED and outcome != Outcome.CLEANED_UP:
        return EXIT_LEFT_BEHIND
    return EXIT_ROLLED_BACK


def cleanup_report(app: App, store: SqlStore, agents: Mapping[str, Agent],
                   retried: list[ResourceRevert]) -> dict[str, Any]:
    """What `cleanup` retried and how each ended, and what is still left behind anywhere."""
    now = {(r.resource, r.owner): r for r in store.reverts()}
    rows = []
    for revert in retried:
        final = now.get((revert.resource, revert.owner), revert)
        rows.append({"resource": str(revert.resource), "owner": revert.owner,
                     "state": str(final.state), "attempts": final.attempts,
                     "error": final.last_error if final.state != RevertState.REVERTED else None})
    return {
        "retried": rows,
        "still_failed": sorted(str(r.resource) for r in now.values()
                               if r.state == RevertState.REVERT_FAILED),
        "leftovers": list(app.leftovers(store, agents)),
    }


def render_cleanup_text(report: dict[str, Any]) -> str:
    """The cleanup report as text: each resource retried and its state, then what is left."""
    lines = [f"{row['resource']} (owner {row['owner']}): {row['state']}"
             + (f" ({row['error']})" if row["error"] else "") for row in report["retried"]]
    if not lines:
        lines.append("nothing was left revert_failed")
    lines.append("still revert_failed: " + (", ".join(report["still_failed"]) or "none"))
    lines.append("leftovers: " + (", ".join(report["leftovers"]) or "none"))
    return "\n".join(lines)


def cleanup_exit_status(report: dict[str, Any]) -> int:
    """0 when nothing is left revert_failed and no leftover is found; 3 otherwise."""
    return EXIT_OK if not report["leftovers"] and not report["still_failed"] \
        else EXIT_LEFT_BEHIND
