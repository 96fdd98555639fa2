"""A simulated network host: an address pool, a DNS server and a switch, reached as one agent.

The pool picks a free address for a lease and answers with it (the task's output), which is
how the address reaches the next step; it releases a lease by its name. The switch keeps a
change log per task, which is what lets it revert a plug natively: given the id of the task
that plugged a port, `revert_task` reverts exactly that change. The DNS server has no such
log for its records, so a record is reverted by deleting it by name. Tasks end after `polls`
polls; a task whose subject the host's `refuse` set names fails, and changes nothing, and so
does a plug on a switch in its `down_switches` set (the fault an operator sees most).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statemachines import HostResult, HostStatus, TaskRejected, TaskReport

ALLOCATE_ADDRESS = "allocate_address"
RELEASE_ADDRESS = "release_address"
CREATE_DNS_RECORD = "create_dns_record"
DELETE_DNS_RECORD = "delete_dns_record"
PLUG_PORT = "plug_port"
REVERT_TASK = "revert_task"
VERBS = (ALLOCATE_ADDRESS, RELEASE_ADDRESS, CREATE_DNS_RECORD, DELETE_DNS_RECORD, PLUG_PORT,
         REVERT_TASK)
#: Verbs that make something (the others revert): only these are ever refused.
MAKING = (ALLOCATE_ADDRESS, CREATE_DNS_RECORD, PLUG_PORT)


@dataclass
class _Task:
    verb: str
    parameters: Mapping[str, Any]
    polls_left: int
    report: TaskReport | None = None


@dataclass
class NetworkHost:
    """The simulated network: its `leases`, `records` and `ports` are the network's truth.

    `leases` maps a lease to its address, `records` a name to its address, and `ports` a port
    to its vlan.

    Args:
        refuse: leases, DNS names and ports this host refuses: their tasks fail.
        polls: polls a task runs for before it ends.
        down_switches: switches that are down: a plug on any of their ports fails.
    """

    refuse: set[str] = field(default_factory=set)
    down_switches: set[str] = field(default_factory=set)
    polls: int = 1
    leases: dict[str, str] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)
    ports: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, _Task] = field(default_factory=dict)
    # What each plug task changed: the port, and what was there before (None: unplugged).
    changes: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        """Queue the task to run after `polls` polls; a repeated id starts nothing.

        An unknown verb is rejected for good (`TaskRejected`).
        """
        if task_id in self.tasks:
            return
        if verb not in VERBS:
            raise TaskRejected(f"the network host has no verb {verb!r}")
        self.tasks[task_id] = _Task(verb, dict(parameters), self.polls)

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        """Reports of the tasks it knows: running until their polls are spent, then their end.

        A task runs (changes the network) at its first poll past `polls`; its report is kept,
        so that a later poll answers the same end without running it again. An id it does not
        know is left out of the answer.
        """
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
        """Forget the task; a plug's entry in the change log stays, for `revert_task`."""
        self.tasks.pop(task_id, None)

    def abort(self, task_id: str) -> None:
        """End a task that has not run yet as a failure ("aborted"), changing nothing.

        A task that already ended keeps its report.
        """
        task = self.tasks.get(task_id)
        if task is not None and task.report is None:
            task.report = TaskReport(HostStatus.FINISHED, HostResult.FAILURE, "aborted")

    def _run(self, task_id: str, task: _Task) -> TaskReport:
        p = task.parameters
        subject = str(p.get("lease") or p.get("name") or p.get("port") or "")
        if task.verb in MAKING and subject in self.refuse:  # reverting is never refused
            return TaskReport(HostStatus.FINISHED, HostResult.FAILURE, f"{subject} refused")
        switch = subject.partition("/")[0]
        if task.verb == PLUG_PORT and switch in self.down_switches:
            return TaskReport(HostStatus.FINISHED, HostResult.FAILURE,
                              f"switch {switch} is down")
        output: Any = None
        if task.verb == ALLOCATE_ADDRESS:
            address = self._allocate(str(p["lease"]), str(p["pool"]))
            if address is None:
                return TaskReport(HostStatus.FINISHED, HostResult.FAILURE,
                                  f"no free address left in {p['pool']}")
            output = {"address": address}
        elif task.verb == RELEASE_ADDRESS:
            self.leases.pop(str(p["lease"]), None)
        elif task.verb == CREATE_DNS_RECORD:
            self.records[str(p["name"])] = str(p["address"])
        elif task.verb == DELETE_DNS_RECORD:
            self.records.pop(str(p["name"]), None)
        elif task.verb == PLUG_PORT:
            port = str(p["port"])
            self.changes[task_id] = (port, self.ports.get(port))
            self.ports[port] = str(p["vlan"])
        else:  # REVERT_TASK: revert exactly what the named task changed, once
            self._revert_change(str(p["task"]))
        return TaskReport(HostStatus.FINISHED, HostResult.SUCCESS, output=output)

    def _revert_change(self, task_id: str) -> None:
        """Put back the port the named plugging task changed; a second call finds nothing."""
        change = self.changes.pop(task_id, None)
        if change is not None:
            port, before = change
            if before is None:
                self.ports.pop(port, None)
            else:
                self.ports[port] = before

    def _allocate(self, lease: str, pool: str) -> str | None:
        """The lease's address, or None when the pool has no free one left.

        It is the address the lease holds already (a repeated start), or the first free one of
        the pool.
        """
        if lease in self.leases:
            return self.leases[lease]
        taken = set(self.leases.values())
        free = next((str(a) for a in ipaddress.ip_network(pool).hosts()
                     if str(a) not in taken), None)
        if free is not None:
            self.leases[lease] = free
        return free
