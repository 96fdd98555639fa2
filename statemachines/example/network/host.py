"""A simulated network host: a DNS server and a switch, reached as one agent.

It keeps a change log per task, which is what lets the switch revert a plug natively: given
the id of the task that plugged a port, `revert_task` undoes exactly that change. The DNS
server has no such log for its records, so a record is undone by deleting it by name.
Tasks end after `polls` polls; a task whose parameters (or the host's `refuse` set) say so
fails, leaving nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statemachines import HostResult, HostStatus, TaskRejected, TaskReport

CREATE_DNS_RECORD = "create_dns_record"
DELETE_DNS_RECORD = "delete_dns_record"
PLUG_PORT = "plug_port"
REVERT_TASK = "revert_task"
VERBS = (CREATE_DNS_RECORD, DELETE_DNS_RECORD, PLUG_PORT, REVERT_TASK)


@dataclass
class _Task:
    verb: str
    parameters: Mapping[str, Any]
    polls_left: int
    report: TaskReport | None = None


@dataclass
class NetworkHost:
    """Its `records` (name -> address) and `ports` (port -> vlan) are the network's truth.

    Args:
        refuse: DNS names and ports this host refuses: their tasks fail.
        polls: polls a task runs for before it ends.
    """

    refuse: set[str] = field(default_factory=set)
    polls: int = 1
    records: dict[str, str] = field(default_factory=dict)
    ports: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, _Task] = field(default_factory=dict)
    # What each plug task changed: the port, and what was there before (None: unplugged).
    changes: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        if task_id in self.tasks:
            return
        if verb not in VERBS:
            raise TaskRejected(f"the network host has no verb {verb!r}")
        self.tasks[task_id] = _Task(verb, dict(parameters), self.polls)

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        answer = {}
        for task_id in task_ids:
            task = self.tasks.get(task_id)
            if task is None:
                continue
            if task.report is None:
                if task.polls_left > 0:
                    task.polls_left -= 1
                    answer[task_id] = TaskReport(HostStatus.RUNNING)
                    continue
                task.report = self._run(task_id, task)
            answer[task_id] = task.report
        return answer

    def clear(self, task_id: str) -> None:
        self.tasks.pop(task_id, None)

    def abort(self, task_id: str) -> None:
        task = self.tasks.get(task_id)
        if task is not None and task.report is None:
            task.report = TaskReport(HostStatus.FINISHED, HostResult.FAILURE, "aborted")

    def _run(self, task_id: str, task: _Task) -> TaskReport:
        p = task.parameters
        subject = str(p.get("name") or p.get("port") or "")
        making = task.verb in (CREATE_DNS_RECORD, PLUG_PORT)  # undoing is never refused
        if making and (p.get("fail") or subject in self.refuse):
            return TaskReport(HostStatus.FINISHED, HostResult.FAILURE, f"{subject} refused")
        if task.verb == CREATE_DNS_RECORD:
            self.records[str(p["name"])] = str(p["address"])
        elif task.verb == DELETE_DNS_RECORD:
            self.records.pop(str(p["name"]), None)
        elif task.verb == PLUG_PORT:
            port = str(p["port"])
            self.changes[task_id] = (port, self.ports.get(port))
            self.ports[port] = str(p["vlan"])
        else:  # REVERT_TASK: undo exactly what the named task changed, once
            change = self.changes.pop(str(p["task"]), None)
            if change is not None:
                port, before = change
                if before is None:
                    self.ports.pop(port, None)
                else:
                    self.ports[port] = before
        return TaskReport(HostStatus.FINISHED, HostResult.SUCCESS)
