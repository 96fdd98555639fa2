"""The engine's implementation of CommandContext for one hook call on one command.

What a hook reads is the engine's own view of the tick (its tasks and children as they are
now, this tick's answers included), copied so that a hook writing to a record changes
nothing. In the hooks of the failure path a command's ended tasks may have been cleared and
forgotten by the view (a rollback takes ticks, and survives restarts), so there the store's
rows fill in what the view no longer holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ..commands.command import reference_problems
from ..errors import HookMisuse, InvalidParameters, LimitExceeded
from ..machines.command_machine import STEP_PHASES, CommandStatus, HookPhase
from ..machines.reasons import ExecutionReason
from ..machines.task_machine import TaskStatus
from ..ports.ledger import Ledger
from ..records.frozen_json import freeze_output
from ..records.records import CommandRecord, TaskRecord, resources_of
from ..records.retry_policy import RetryPolicy
from ..records.revert_state import ResourceRef
from .hook_access import HookAccess
from .record_copies import copy_record, copy_task

L = TypeVar("L", bound=Ledger)

#: Hooks whose command may have ended tasks the view forgot: read the store's rows too.
_AFTER_THE_END = (HookPhase.END_WITH_FAILURE, HookPhase.CLEANUP)


class HookContext:
    """The engine's `CommandContext` for one hook call on one command.

    Children, tasks and resources may be created only in a step (`execute`, `next_step`): a
    task started by an end hook would belong to a command whose end already ran, and nothing
    would ever end it.
    """

    def __init__(self, tick: HookAccess, record: CommandRecord, phase: HookPhase) -> None:
        self._tick = tick
        self._record = record
        self._phase = phase
        #: Children and tasks this call created: a step that created none is the last.
        self.spawned = 0
        self._resources_added = 0

    def _in_a_step(self, what: str) -> None:
        if self._phase not in STEP_PHASES:
            raise HookMisuse(f"{self._record.type} {self._record.id}: {what} is only allowed in "
                             f"execute and next_step, not in {self._phase}")

    def _may_spawn(self, what: str) -> None:
        self._in_a_step(what)
        limits = self._tick.limits
        record = self._record
        if record.step > limits.max_steps:
            raise LimitExceeded(
                f"{record.type} {record.id} would start work in step {record.step}, beyond "
                f"Limits.max_steps ({limits.max_steps})", "max_steps")
        self.spawned += 1
        if self.spawned > limits.max_spawn_per_step:
            raise LimitExceeded(
                f"{record.type} {record.id} created more than Limits.max_spawn_per_step "
                f"({limits.max_spawn_per_step}) children and tasks in one step",
                "max_spawn_per_step")

    @property
    def now(self) -> float:
        """The tick's time, the one every record this tick writes is stamped with."""
        return self._tick.now

    @property
    def step(self) -> int:
        """The step the command is in, from its record: in an end hook, the steps it took."""
        return self._record.step

    def ledger(self, kind: type[L]) -> L:
        """The tick's ledger of that class, bound to the tick's transaction."""
        return self._tick.ledger(kind)

    def resource_exists(self, resource: ResourceRef) -> bool:
        """The tick's answer, where None (no ledger keeps the type) is taken as True."""
        answer = self._tick.resource_exists(resource)
        return True if answer is None else answer

    @property
    def work_succeeded(self) -> bool:
        """The end group's verdict as the record holds it: False while none is set."""
        return self._record.work_succeeded is True

    @property
    def own_work_succeeded(self) -> bool:
        """The record's own verdict once set; until then, no failed step and no failed task."""
        record = self._record
        if record.own_work_succeeded is not None:
            return record.own_work_succeeded
        return record.status != CommandStatus.EXECUTION_FAILED and all(
            t.succeeded for t in self._own_tasks() if t.status in _ENDED_TASKS)

    @property
    def tasks(self) -> tuple[TaskRecord, ...]:
        """Copies of the last attempt of each task, in creation order (store rows after the end)."""
        return tuple(copy_task(t) for t in self._own_tasks())

    def _own_tasks(self) -> list[TaskRecord]:
        tick, record = self._tick, self._record
        found = tick.stored_tasks(record.id) if self._phase in _AFTER_THE_END else {}
        found.update((t.id, t) for t in tick.tasks_in_view(record.id))
        return sorted((t for t in found.values() if not t.retried),
                      key=lambda t: (t.created_at, t.id))

    @property
    def children(self) -> tuple[CommandRecord, ...]:
        """Copies of the command's children, its opposite commands left out, in creation order.

        In a step or at its end every child is in the view (an ended child leaves it, and only a
        refused one can have ended before its group: then no step follows); on the failure path
        they have ended, and this tick's changes sit over the store's rows.
        """
        tick, record = self._tick, self._record
        found = tick.stored_children(record.id) if self._phase in _AFTER_THE_END else {}
        found.update(tick.children_in_view(record.id))
        return tuple(copy_record(c) for c in sorted(
            (c for c in found.values() if c.end_group_id != c.id),
            key=lambda c: (c.created_at, c.id)))

    @property
    def resources(self) -> tuple[ResourceRef, ...]:
        """The command's entity and added resources, as its record holds them."""
        return resources_of(self._record)

    def add_child(
        self,
        type_name: str,
        parameters: Mapping[str, Any],
        entity: ResourceRef | None = None,
    ) -> CommandRecord:
        """In a step only, within `Limits.max_steps` and `max_spawn_per_step`; the tick adds it."""
        self._may_spawn("add_child")
        return self._tick.add_child(self._record, type_name, parameters, entity)

    def start_task(
        self,
        agent: str,
        verb: str,
        parameters: Mapping[str, Any],
        entities: Iterable[ResourceRef] = (),
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> TaskRecord:
        """In a step only, within the spawn limits; an opposite command's task is never retried."""
        self._may_spawn("start_task")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidParameters(f"task {verb!r:.40} of {self._record.type}",
                                    [f"retry must be a RetryPolicy (got {retry!r:.80})"])
        return self._tick.start_task(self._record, agent, verb, parameters, entities, timeout,
                                     self._policy(retry))

    def _policy(self, retry: RetryPolicy | None) -> RetryPolicy | None:
        """The task's own policy, else its command type's, else the engine's.

        Opposite commands' tasks are never retried (their budget is the RevertPolicy's), and a
        policy with no retries is none.
        """
        if self._record.execution_reason == ExecutionReason.ROLLBACK_FLOW:
            return None
        policy = retry or self._tick.retry_of(self._record.type)
        return policy if policy.retries else None

    def add_resource(self, resource: ResourceRef) -> None:
        """In a step only, at most `max_spawn_per_step` new ones; a repeat is ignored."""
        self._in_a_step("add_resource")
        record = self._record
        if not isinstance(resource, ResourceRef):
            raise InvalidParameters(record.type, [
                f"add_resource takes a ResourceRef (got {resource!r:.80})"])
        if problems := reference_problems("resource", resource):
            raise InvalidParameters(record.type, problems)
        if resource in resources_of(record):
            return
        self._resources_added += 1
        limit = self._tick.limits.max_spawn_per_step
        if self._resources_added > limit:
            raise LimitExceeded(f"{record.type} {record.id} added more than "
                                f"Limits.max_spawn_per_step ({limit}) resources in one step",
                                "max_spawn_per_step")
        record.resources = (*record.resources, (resource.type, resource.id))
        self._tick.touch(record)

    def set_output(self, output: Any) -> None:
        """Keep the output frozen, within `Limits.max_output_bytes`; not in validate or cleanup."""
        record = self._record
        if self._phase in (HookPhase.VALIDATE, HookPhase.CLEANUP):
            raise HookMisuse(f"{record.type} {record.id}: set_output is not allowed in "
                             f"{self._phase}")
        try:
            record.output = freeze_output(output, self._tick.limits.max_output_bytes)
        except ValueError as err:
            raise InvalidParameters(f"the output of {record.type} {record.id}",
                                    [str(err)]) from None
        self._tick.touch(record)


#: A task its agent has said its last word on.
_ENDED_TASKS = frozenset({TaskStatus.FINISHED, TaskStatus.START_FAILED, TaskStatus.ENDING,
                          TaskStatus.CLEARED, TaskStatus.CLEAR_FAILED})
