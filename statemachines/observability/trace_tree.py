"""A root's tree as spans: one per command and per task, parented as the records say.

Everything here comes from the persisted records and their history, never from an engine's
memory, so a tree built after a crash and a resume is the tree built without one; the crash
shows as what the history recorded of it (`recover`, `fail_execution` "recovered after a
crash"). Spans are started and ended at once with the times the records give: a span's
start is its record's `created_at`, its end the first time its machine reached an end, so the
trace reads as the run happened, whenever it is built.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from ..core.machines.command_machine import TERMINAL_COMMAND_STATES, CommandStatus, Outcome
from ..core.machines.task_machine import DONE_TASK_STATES, TaskTrigger
from ..core.records.records import CommandRecord, HistoryEntry, ObjectKind, TaskRecord
from .trace_ids import planned, remote_parent, span_id_of, trace_id_of

#: Outcomes that say the command's own work, or its reverting, went wrong: ERROR spans. A
#: rolled-back sibling (`rolled_back`) or a successful opposite command (`reverted`, though
#: its status is `ended_failure` by the override rule) is no error of its own.
FAILED_OUTCOMES = frozenset({
    Outcome.FAILED, Outcome.REFUSED, Outcome.REVERT_FAILED, Outcome.ATTEMPT_FAILED,
    Outcome.LOST, Outcome.CHILD_REVERT_FAILED, Outcome.CANCELLED,
})
_COMMAND_ENDS = frozenset(str(s) for s in TERMINAL_COMMAND_STATES)
_TASK_ENDS = frozenset(str(s) for s in DONE_TASK_STATES)
_CLEARS = frozenset({str(TaskTrigger.CLEARED), str(TaskTrigger.CLEAR_FAILED)})


@dataclass
class SpanMaker:
    """Starts the spans of one root's trace, with planned ids or under a remote parent.

    With `planned_ids` (the tracer takes planned ids), each span gets the ids it was planned
    to have; without, the root span starts under a remote parent carrying the trace id.
    """

    tracer: trace.Tracer
    root_id: str
    planned_ids: bool

    @property
    def trace_id(self) -> int:
        """The trace id of every span of the root's trace, from the root's id."""
        return trace_id_of(self.root_id)

    def start(self, object_id: str, name: str, parent: context_api.Context | None,
              kind: SpanKind, attributes: Mapping[str, AttributeValue],
              start: float) -> trace.Span:
        """A span for `object_id`; `parent` None for the root span."""
        if parent is None:
            # An empty context, never the caller's: the root span is nobody's child.
            parent = context_api.Context() if self.planned_ids \
                else remote_parent(self.trace_id, self.root_id)
        if not self.planned_ids:
            return self.tracer.start_span(name, context=parent, kind=kind,
                                          attributes=attributes, start_time=_ns(start))
        with planned(self.trace_id, span_id_of(object_id)):
            return self.tracer.start_span(name, context=parent, kind=kind,
                                          attributes=attributes, start_time=_ns(start))


def start_root_span(maker: SpanMaker, root: CommandRecord) -> trace.Span:
    """The root's span, started first.

    Whether it records (the sampler's word, by trace id) decides whether the rest of the tree
    is read at all.
    """
    return maker.start(root.id, root.type, None, SpanKind.INTERNAL, command_attributes(root),
                       root.created_at)


def finish_span(span: trace.Span, rows: Sequence[HistoryEntry], ends: Collection[str],
                start: float, fallback_end: float,
                error: str | None) -> None:
    """Its history as events, its status, and its end at the first arrival in `ends`."""
    for row in _within(rows, ends):
        span.add_event(str(row.trigger), _event_attributes(row), timestamp=_ns(row.at))
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=_ns(max(start, end_time(rows, ends, fallback_end))))


def emit_children(maker: SpanMaker, root: CommandRecord, root_span: trace.Span,
                  commands: Iterable[CommandRecord], tasks: Iterable[TaskRecord],
                  history: Iterable[HistoryEntry]) -> int:
    """Every command and task under the root, parents before children; how many spans."""
    rows = rows_by_object(history)
    child_commands: dict[str, list[CommandRecord]] = defaultdict(list)
    known = {root.id}
    others = [c for c in commands if c.id != root.id]
    known.update(c.id for c in others)
    for command in others:
        # An opposite command's parent is the command it reverts; a record naming a parent
        # outside the tree (none should) still shows, under the root.
        parent_id = command.parent_id if command.parent_id in known else root.id
        child_commands[parent_id].append(command)
    child_tasks: dict[str, list[TaskRecord]] = defaultdict(list)
    for task in tasks:
        child_tasks[task.command_id if task.command_id in known else root.id].append(task)
    emitted = 0
    pending = [(root.id, _as_parent(root_span))]
    while pending:
        parent_id, parent = pending.pop()
        for task in child_tasks.get(parent_id, ()):
            span = maker.start(task.id, task.verb, parent, SpanKind.CLIENT,
                               task_attributes(task), task.created_at)
            finish_span(span, rows.get(task.id, ()), _TASK_ENDS, task.created_at,
                        task.updated_at, task_error(task))
            emitted += 1
        for command in child_commands.get(parent_id, ()):
            span = maker.start(command.id, command.type, parent, SpanKind.INTERNAL,
                               command_attributes(command), command.created_at)
            finish_span(span, rows.get(command.id, ()), _COMMAND_ENDS, command.created_at,
                        command.updated_at, command_error(command, root=False))
            emitted += 1
            pending.append((command.id, _as_parent(span)))
    return emitted


def finish_root(span: trace.Span, root: CommandRecord, rows: Sequence[HistoryEntry]) -> None:
    """Finish the root's span as any other, except that it reads ERROR unless the root succeeded."""
    finish_span(span, rows, _COMMAND_ENDS, root.created_at, root.updated_at,
                command_error(root, root=True))


def rows_by_object(history: Iterable[HistoryEntry]) -> dict[str, list[HistoryEntry]]:
    """The history rows of each command and task, by its id, in the order given."""
    found: dict[str, list[HistoryEntry]] = defaultdict(list)
    for row in history:
        found[row.object_id].append(row)
    return found


def _within(rows: Sequence[HistoryEntry], ends: Collection[str]) -> list[HistoryEntry]:
    """The rows a span shows, so that a trace reads the same whenever it is built.

    What is recorded after the end is not yet there when the root ends. So a command's rows
    stop at its end (a later `cleanup` is not this run), and a task's clears (the agent told
    to forget it, in the ticks after its command's end) are left out.
    """
    shown = []
    for row in rows:
        if row.object_kind == ObjectKind.TASK:
            if row.trigger not in _CLEARS:
                shown.append(row)
            continue
        shown.append(row)
        if row.source != row.dest and row.dest in ends:
            break
    return shown


def end_time(rows: Sequence[HistoryEntry], ends: Collection[str], fallback: float) -> float:
    """When the object first reached an end, or its last row or write if it never did.

    An end is a command's terminal state, or a task's last word from its agent (its clearing
    after is bookkeeping, often after the root's end). One that never reached an end (a held
    root) ends at its last row, or at the record's last write if that is later.
    """
    for row in rows:
        if row.source != row.dest and row.dest in ends:
            return row.at
    return max([fallback, *(row.at for row in rows)])


def command_error(command: CommandRecord, *, root: bool) -> str | None:
    """The cause, for a span that must read ERROR; None for one that must not.

    A span reads ERROR when its own work or its reverting failed, or when it is a root that did
    not succeed (the trace's top says the operation failed, and why).
    """
    failed = command.outcome in FAILED_OUTCOMES or (
        root and command.status != CommandStatus.ENDED_SUCCESS)
    if not failed:
        return None
    return command.error or f"{command.status} ({command.outcome or 'no outcome'})"


def task_error(task: TaskRecord) -> str | None:
    """A task that ended without success (a retried attempt too: it did fail)."""
    if task.host_status is None and task.host_result is None:
        return None  # its agent never ended it (a held root): no word on it yet
    if task.succeeded:
        return None
    return task.message or f"{task.verb} on {task.agent}: {task.host_status}/{task.host_result}"


def command_attributes(command: CommandRecord) -> dict[str, AttributeValue]:
    """A command span's attributes, from its record; what the record lacks is left out.

    They name its root, parent and entity, its type, execution reason, status and outcome, its
    step, whether its own work succeeded, and its cause.
    """
    return _present({
        "endaction.root.id": command.root_id,
        "endaction.command.id": command.id,
        "endaction.command.type": command.type,
        "endaction.parent.id": command.parent_id,
        "endaction.execution_reason": str(command.execution_reason),
        "endaction.status": str(command.status),
        "endaction.outcome": None if command.outcome is None else str(command.outcome),
        "endaction.entity": None if command.entity_id is None
        else f"{command.entity_type}:{command.entity_id}",
        "endaction.step": command.step,
        "endaction.own_work_succeeded": command.own_work_succeeded,
        "endaction.cause": command.error,
    })


def task_attributes(task: TaskRecord) -> dict[str, AttributeValue]:
    """A task span's attributes, from its record; what the record lacks is left out.

    They name its root and command, its verb and agent, its status and what its host reported,
    its attempt and whether it was retried, and its cause and message.
    """
    return _present({
        "endaction.root.id": task.root_command_id,
        "endaction.task.id": task.id,
        "endaction.command.id": task.command_id,
        "endaction.task.verb": task.verb,
        "endaction.agent": task.agent,
        "endaction.status": str(task.status),
        "endaction.task.host_status": None if task.host_status is None
        else str(task.host_status),
        "endaction.task.host_result": None if task.host_result is None
        else str(task.host_result),
        "endaction.task.attempt": task.attempt,
        "endaction.task.retried": task.retried,
        "endaction.cause": task_error(task),
        "endaction.task.message": task.message,
    })


def _event_attributes(row: HistoryEntry) -> dict[str, AttributeValue]:
    return _present({
        "endaction.source": str(row.source),
        "endaction.dest": str(row.dest),
        "endaction.detail": row.detail,
        # The worker or engine that took the step, where the schema records it.
        "endaction.actor": getattr(row, "actor", None),
    })


def _present(values: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    """Attributes cannot be None: what a record lacks is left out."""
    return {key: value for key, value in values.items() if value is not None}


def _as_parent(span: trace.Span) -> context_api.Context:
    """A context naming the span by its ids only: the children need no more of it."""
    return trace.set_span_in_context(trace.NonRecordingSpan(span.get_span_context()),
                                     context_api.Context())


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)
