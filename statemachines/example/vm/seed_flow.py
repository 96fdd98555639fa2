"""The seed's flow (AddVmFromTemplate, its clones, the ROLLBACK_FLOW RemoveImage) as a diagram.

It is not drawn by hand: the example's own hooks run against a recording context, and the
command machine itself decides each end. If CreateCloneOfTemplate stopped naming RemoveImage
as its opposite, or the override guard let a ROLLBACK_FLOW command succeed, the diagram
would change with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ...core.commands.command import Command, CommandRegistry
from ...core.machines.command_machine import COMMAND_MACHINE, CommandStatus
from ...core.machines.reasons import ExecutionReason
from ...core.ports.ledger import Ledger
from ...core.records.frozen_json import freeze
from ...core.records.records import CommandRecord, TaskRecord
from ...core.records.retry_policy import RetryPolicy
from ...core.records.revert_state import ResourceRef
from ...diagrams import Drawing, Edge
from .commands import AddVmFromTemplate, add_vm_parameters, vm_registry

DISKS = 3
SUCCESS = CommandStatus.ENDED_SUCCESS.value
FAILURE = CommandStatus.ENDED_FAILURE.value


L = TypeVar("L", bound=Ledger)


@dataclass
class _Recorder:
    """A CommandContext that remembers what a hook asked for instead of doing it.

    Ledgers are kept in memory (a SQL ledger given no connection keeps its rows there).
    """

    ledgers: dict[type[Ledger], Ledger]
    work_succeeded: bool = True
    own_work_succeeded: bool = True
    now: float = 0.0
    step: int = 1
    made: list[CommandRecord] = field(default_factory=list)
    started: list[TaskRecord] = field(default_factory=list)
    added: list[ResourceRef] = field(default_factory=list)
    output: Any = None

    @property
    def tasks(self) -> tuple[TaskRecord, ...]:
        return tuple(self.started)

    @property
    def children(self) -> tuple[CommandRecord, ...]:
        return tuple(self.made)

    @property
    def resources(self) -> tuple[ResourceRef, ...]:
        return tuple(self.added)

    def add_child(self, type_name: str, parameters: Mapping[str, Any],
                  entity: ResourceRef | None = None) -> CommandRecord:
        child = _record(type_name, parameters, ExecutionReason.REGULAR_FLOW, entity)
        self.made.append(child)
        return child

    def start_task(self, agent: str, verb: str, parameters: Mapping[str, Any],
                   entities: Iterable[ResourceRef] = (), timeout: float | None = None,
                   retry: RetryPolicy | None = None) -> TaskRecord:
        task = TaskRecord(f"task{len(self.started)}", "", "", agent, verb, freeze(parameters),
                          tuple((e.type, e.id) for e in entities))
        self.started.append(task)
        return task

    def add_resource(self, resource: ResourceRef) -> None:
        self.added.append(resource)

    def set_output(self, output: Any) -> None:
        self.output = output

    def ledger(self, kind: type[L]) -> L:
        if kind not in self.ledgers:
            self.ledgers[kind] = kind(None)  # type: ignore[call-arg]
        return self.ledgers[kind]  # type: ignore[return-value]

    def resource_exists(self, resource: ResourceRef) -> bool:
        found = [ledger for ledger in self.ledgers.values()
                 if ledger.resource_type == resource.type]
        return found[0].exists(resource.id) if found else True


def _record(type_name: str, parameters: Mapping[str, Any], reason: ExecutionReason,
            entity: ResourceRef | None = None) -> CommandRecord:
    return CommandRecord(
        id=type_name, root_id="root", parent_id=None, end_group_id="root", type=type_name,
        execution_reason=reason, parameters=freeze(parameters),
        entity_type=entity.type if entity else None, entity_id=entity.id if entity else None)


def _end(record: CommandRecord, work_succeeded: bool) -> str:
    """Where the command machine takes this command's end, for one verdict of its group."""
    trial = replace(record, status=CommandStatus.ENDING, work_succeeded=work_succeeded)
    COMMAND_MACHINE.fire(trial, "end")
    return SUCCESS if trial.status == SUCCESS else FAILURE


def seed_flow_drawing(registry: CommandRegistry | None = None) -> Drawing:
    """The seed's flow, drawn from what the hooks of `registry` (the VM example's) ask for.

    Each command type, from AddVmFromTemplate on, runs its `execute` once against a recording
    context: the children it adds and the tasks it starts become edges, and so do its ends
    (as the command machine decides them) and the opposite command its `revert` names.
    """
    registry = registry or vm_registry()
    ledgers: dict[type[Ledger], Ledger] = {}
    sources = [f"template-disk{i}" for i in range(DISKS)]
    root = _record(AddVmFromTemplate.type_name, add_vm_parameters("vm", sources),
                   ExecutionReason.REGULAR_FLOW)
    states: list[str] = []
    labels: dict[str, str] = {}
    edges: list[Edge] = []
    queue = [root]
    while queue:
        record = queue.pop(0)
        if record.type in states:
            continue
        states.append(record.type)
        labels[record.type] = f"{record.type}\n{record.execution_reason}"
        command = registry.get(record.type)(record)
        ctx = _Recorder(ledgers)
        command.execute(ctx)
        for child_type, count in Counter(c.type for c in ctx.made).items():
            many = "\u00d7N (one per disk)" if count == DISKS else f"\u00d7{count}"
            edges.append(Edge("add_child", record.type, child_type, label=f"add_child {many}"))
            queue += [c for c in ctx.made if c.type == child_type][:1]
        for verb, agent in dict.fromkeys((t.verb, t.agent) for t in ctx.started):
            if verb not in states:
                states.append(verb)
                labels[verb] = f"task {verb}\non agent {agent!r}"
            edges.append(Edge("start_task", record.type, verb, label="start_task"))
        edges += _ends(record, command, ctx, queue)
    states += [SUCCESS, FAILURE]
    return Drawing(name="seed_flow", title="seed flow: AddVmFromTemplate and its rollback",
                   states=tuple(states), initial=root.type, edges=tuple(edges),
                   final=frozenset({SUCCESS, FAILURE}), state_labels=labels)


def _ends(record: CommandRecord, command: Command, ctx: _Recorder,
          queue: list[CommandRecord]) -> list[Edge]:
    """The command's end edges as the machine decides them, and its opposite command if any."""
    edges = []
    on_success, on_failure = _end(record, True), _end(record, False)
    if on_success == SUCCESS:
        edges.append(Edge("end", record.type, SUCCESS, label="end [work succeeded]"))
    rollback = record.execution_reason == ExecutionReason.ROLLBACK_FLOW
    resource = (ResourceRef(record.entity_type, record.entity_id)
                if record.entity_type and record.entity_id else None)
    ctx.work_succeeded = False
    if not rollback and resource is not None and command.resource_exists(ctx, resource):
        opposite = command.revert(ctx, resource)
        if opposite is not None:
            edges.append(Edge("revert", record.type, opposite.type_name,
                              label="end [work failed]: revert, as ROLLBACK_FLOW"))
            queue.append(_record(opposite.type_name, opposite.parameters,
                                 ExecutionReason.ROLLBACK_FLOW, resource))
    if on_success == FAILURE:
        edges.append(Edge("end", record.type, FAILURE,
                          label=f"end [{record.execution_reason}]: failure, even after its "
                                "work succeeded"))
    elif on_failure == FAILURE:
        edges.append(Edge("end", record.type, FAILURE, label="end [work failed]"))
    return edges
