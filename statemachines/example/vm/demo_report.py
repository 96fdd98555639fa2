"""The VM's end-of-run report: the JSON contract of `demo --json` and `resume --json`, and its text.

Leftovers are computed from the two places a resource can linger: files in the storage
directory and rows in the inventory. Either one belonging to no successfully created VM is
something the rollback left behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from persistence import SqlStore
from statemachines import Agent, CommandStatus, Store, TaskStatus
from statemachines.toolkit import generic_report

from .commands import image_name
from .inventory import ImageInventory
from .storage_agents import storage_host


def vm_report(store: Store, agents: Mapping[str, Agent], root_id: str) -> dict[str, Any]:
    """The generic report, with the VM's name and which of its images are on disk."""
    if not isinstance(store, SqlStore):
        raise TypeError("the VM example's inventory is a table of a SQL store")
    on_disk = set(storage_host(agents).image_names())
    report = generic_report(store, root_id, _leftovers(store, on_disk))
    root = store.command(root_id)
    assert root is not None  # generic_report read its tree
    vm = str(root.parameters.get("vm", ""))
    mine = [image_name(vm, i) for i in range(len(root.parameters.get("disks", ())))]
    report["root"]["vm"] = vm
    report["images_on_disk"] = [name for name in mine if name in on_disk]
    return report


def vm_leftovers(store: Store, agents: Mapping[str, Agent]) -> list[str]:
    """Images on disk or in the inventory that belong to no VM that was made.

    The images of a root still running are its work in progress, not left behind (a fleet's
    cleanup reports while other roots run). Judged twice, and only what both looks find left
    is reported: between reading the disk and the database a running root may make an image
    (on disk, not yet in the inventory) or end and delete one.
    """
    first = _leftovers(store, set(storage_host(agents).image_names()))
    if not first:
        return first
    second = set(_leftovers(store, set(storage_host(agents).image_names())))
    return [name for name in first if name in second]


def _leftovers(store: Store, on_disk: set[str]) -> list[str]:
    if not isinstance(store, SqlStore):
        raise TypeError("the VM example's inventory is a table of a SQL store")
    owners: dict[str, str] = {}
    for row in ImageInventory.read_all(store.engine):
        owners[row.id] = row.root_id
    root_status: dict[str, str | None] = {}
    for root_id in set(owners.values()):
        record = store.command(root_id)
        root_status[root_id] = record.status if record else None
    in_progress = _images_of_running_roots(store)
    left = []
    for name in sorted(on_disk | set(owners)):
        owner = owners.get(name)
        status = None if owner is None else root_status.get(owner)
        if status is None and name in in_progress:
            continue  # being copied: its root records it when the copy succeeds
        if status is None or status in (CommandStatus.ENDED_FAILURE,
                                        CommandStatus.ROLLBACK_FAILED):
            left.append(name)
    return left


def _images_of_running_roots(store: Store) -> set[str]:
    """The images every root not yet ended may make (a lease row means work remains)."""
    names: set[str] = set()
    for root_id, _, _ in store.leases():
        record = store.command(root_id)
        if record is None or record.type != "AddVmFromTemplate":
            continue
        vm = str(record.parameters.get("vm", ""))
        names.update(image_name(vm, i) for i in range(len(record.parameters.get("disks", ()))))
    return names


def _describe(command: dict[str, Any], tasks: list[dict[str, Any]], root_error: str) -> str:
    """One line of the tree: the command, its resource, its flow, its state and its tasks."""
    parts = [command["type"]]
    if command["entity"] and command["parent_id"]:
        parts.append(command["entity"].split(":", 1)[1])
    if command["execution_reason"] == "ROLLBACK_FLOW":
        parts.append("[ROLLBACK_FLOW]")
    parts.append(command["status"])
    details = [f"{t['verb']} {t['host_result'] or t['status']}" for t in tasks]
    if command["outcome"]:
        details.append(command["outcome"])
    if command["error"] and command["id"] not in root_error:
        details.append(command["error"])  # the root's cause names it already
    return " ".join(parts) + (f" ({', '.join(details)})" if details else "")


def _headline(root: dict[str, Any]) -> list[str]:
    lines = [f"VM {root['vm']} ({root['type']} {root['id']}): {root['status']}"
             + (f" ({root['outcome']})" if root.get("outcome") else "")]
    if root.get("error"):
        lines.append(f"  cause: {root['error']}")
    if root.get("held"):
        lines.append(f"  HELD: the engine failed on this root and stopped working on it: "
                     f"{root['held']} (fix the cause, then `endaction release {root['id']}`)")
    return lines


def render_text(report: dict[str, Any]) -> str:
    """The report as text, for `demo` and `resume` without `--json`.

    The headline comes first, then the tree of commands with their tasks, the counts of copies
    and of opposite commands, the images on disk and the leftovers, and last the tasks the
    host still holds.
    """
    root = report["root"]
    commands = report["commands"]
    tasks_by_command: dict[str, list[dict[str, Any]]] = {}
    for task in report["tasks"]:
        tasks_by_command.setdefault(task["command_id"], []).append(task)
    children: dict[str | None, list[dict[str, Any]]] = {}
    for command in commands:
        children.setdefault(command["parent_id"], []).append(command)
    lines = _headline(root)

    def walk(command: dict[str, Any], prefix: str) -> None:
        kids = children.get(command["id"], [])
        for index, child in enumerate(kids):
            last = index == len(kids) - 1
            line = _describe(child, tasks_by_command.get(child["id"], []),
                             root.get("error") or "")
            lines.append(f"{prefix}{'└─' if last else '├─'} {line}")
            walk(child, prefix + ("   " if last else "│  "))

    walk(next(c for c in commands if c["id"] == root["id"]), "  ")
    copies = [t for t in report["tasks"] if t["verb"] == "copy_image"]
    ok = sum(1 for t in copies if t["host_result"] == "success")
    rollbacks = [c for c in commands if c["execution_reason"] == "ROLLBACK_FLOW"]
    reverted = sum(1 for c in rollbacks if c["outcome"] == "reverted")
    lines.append(f"disk copies: {ok} succeeded, {len(copies) - ok} did not")
    lines.append(f"opposite commands (ROLLBACK_FLOW): {len(rollbacks)}, {reverted} reverted")
    lines.append("images on disk: " + (", ".join(report["images_on_disk"]) or "none"))
    lines.append("leftovers: " + (", ".join(report["leftovers"]) or "none"))
    uncleared = [t for t in report["tasks"] if t["status"] != TaskStatus.CLEARED]
    if uncleared:
        lines.append("tasks the host still holds: " + ", ".join(
            f"{t['verb']} {t['id']} ({t['status']}: {t['message']})" for t in uncleared))
    return "\n".join(lines)
