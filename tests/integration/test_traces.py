"""OpenTelemetry traces of ended roots: one span per command and task, parented as the tree.

They sit under the root's id and are built from the database (so a crash and a resume change nothing
of them).

Each test hands its own SDK provider to the tracer: the global provider can be set only once per
process, and tests must not depend on each other's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

from persistence import SqlStore
from statemachines import (
    CommandRecord,
    ExecutionReason,
    HistoryEntry,
    HostResult,
    RetryPolicy,
    TaskRecord,
    TickReport,
)
from statemachines.example.vm import Plan, SimulatedAgent
from statemachines.example.vm.application import app as vm_app
from statemachines.observability import RootTracer, traced
from statemachines.observability import tracing as tracing_module
from statemachines.observability.trace_ids import span_id_of, trace_id_of
from statemachines.toolkit.agent_options import AgentChoice
from statemachines.toolkit.app_world import open_app
from tests.worlds import World

Spans = tuple[ReadableSpan, ...]


@pytest.fixture
def collected() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _rolled_back_vm(world: World, tracer: RootTracer) -> str:
    engine = world.engine(on_commit=tracer)
    root = world.submit_vm(engine, disks=3, fail=(1,))
    engine.run_until_idle()
    return root


def _by_object(spans: Spans) -> dict[str, ReadableSpan]:
    found: dict[str, ReadableSpan] = {}
    for span in spans:
        attributes = span.attributes or {}
        ident = attributes.get("endaction.task.id") or attributes["endaction.command.id"]
        assert isinstance(ident, str)
        assert ident not in found, f"two spans for {ident}"
        found[ident] = span
    return found


def assert_whole_tree(spans: Spans, root: str, commands: list[CommandRecord],
                      tasks: list[TaskRecord]) -> dict[str, ReadableSpan]:
    """One span per command and task, one trace (the root's id), parents as the records."""
    by_object = _by_object(spans)
    assert set(by_object) == {c.id for c in commands} | {t.id for t in tasks}
    assert {s.context.trace_id for s in spans if s.context} == {int(root, 16)}
    span_ids = {ident: span.context.span_id for ident, span in by_object.items()
                if span.context}
    assert by_object[root].parent is None, "the root span is nobody's child"
    for command in commands:
        if command.parent_id is not None:
            parent = by_object[command.id].parent
            assert parent is not None and parent.span_id == span_ids[command.parent_id]
    for task in tasks:
        parent = by_object[task.id].parent
        assert parent is not None and parent.span_id == span_ids[task.command_id]
    return by_object


def test_a_rolled_back_root_is_one_trace_of_its_whole_tree(
    store: SqlStore, collected: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = collected
    world = World(store)
    root = _rolled_back_vm(world, RootTracer(store, provider))
    commands, tasks = store.tree(root)
    spans = exporter.get_finished_spans()
    by_object = assert_whole_tree(spans, root, commands, tasks)
    assert len(commands) == 7 and len(tasks) == 6  # 3 clones, 3 RemoveImage, a task each
    # Ids derived from the records: the same trace from any process that builds it.
    assert all(span.context.span_id == span_id_of(ident)
               for ident, span in by_object.items() if span.context)
    assert trace_id_of(root) == int(root, 16)

    record = {c.id: c for c in commands}
    root_span = by_object[root]
    assert root_span.status.status_code == StatusCode.ERROR
    assert root_span.status.description == record[root].error
    clones = [c for c in commands if c.type == "CreateCloneOfTemplate"]
    failed = [c for c in clones if c.outcome == "failed"]
    assert len(failed) == 1
    failed_span = by_object[failed[0].id]
    assert failed_span.status.status_code == StatusCode.ERROR
    assert failed_span.status.description == failed[0].error
    assert (failed_span.attributes or {})["endaction.cause"] == failed[0].error
    for clone in clones:
        if clone is not failed[0]:
            assert by_object[clone.id].status.status_code == StatusCode.UNSET
            assert (by_object[clone.id].attributes or {})["endaction.outcome"] == "rolled_back"
    opposite = [c for c in commands if c.execution_reason == ExecutionReason.ROLLBACK_FLOW]
    assert sorted(c.parent_id or "" for c in opposite) == sorted(c.id for c in clones)
    for command in opposite:
        attributes = by_object[command.id].attributes or {}
        assert attributes["endaction.execution_reason"] == "ROLLBACK_FLOW"
        assert attributes["endaction.command.type"] == "RemoveImage"
        assert attributes["endaction.status"] == "ended_failure"
        assert attributes["endaction.outcome"] == "reverted"
        # Its status is ended_failure by the override rule; undoing succeeded: no error.
        assert by_object[command.id].status.status_code == StatusCode.UNSET
    for task in tasks:
        span = by_object[task.id]
        attributes = span.attributes or {}
        assert span.kind == trace.SpanKind.CLIENT and span.name == task.verb
        assert (attributes["endaction.task.verb"], attributes["endaction.agent"]) == (
            task.verb, task.agent)
        assert (span.status.status_code == StatusCode.ERROR) == (task.host_result != "success")
        if task.host_result != "success":
            assert span.status.description == task.message
    _assert_events_are_the_history(by_object, store.history_of_root(root), commands, tasks)


def _assert_events_are_the_history(by_object: dict[str, ReadableSpan],
                                   history: list[HistoryEntry], commands: list[CommandRecord],
                                   tasks: list[TaskRecord]) -> None:
    """Every history row is an event of its object's span, in order, at its time.

    A span starts at its record's creation and ends at its first arrival at an end.
    """
    ends = {"command": {"ended_success", "ended_failure", "rollback_failed"},
            "task": {"finished", "start_failed"}}
    created = {**{c.id: c.created_at for c in commands}, **{t.id: t.created_at for t in tasks}}
    for ident, span in by_object.items():
        rows = [h for h in history if h.object_id == ident]
        events = [(e.name, e.timestamp, dict(e.attributes or {}).get("endaction.dest"))
                  for e in span.events]
        # All but a task's clears, made in the ticks after its command's end (often after
        # the root's, so that a trace built later would otherwise differ).
        assert events == [(h.trigger, round(h.at * 1e9), h.dest) for h in rows
                          if h.trigger != "cleared"]
        assert span.start_time == round(created[ident] * 1e9)
        end = next(h.at for h in rows if h.dest in ends[rows[0].object_kind]
                   and h.source != h.dest)
        assert span.end_time == round(end * 1e9)


def test_every_attempt_of_a_retried_task_is_a_span_and_the_retry_an_event(
    sqlite_store: SqlStore, collected: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = collected
    copies: list[str] = []

    def first_copy_fails(verb: str, parameters: Mapping[str, Any]) -> Plan:
        copies.append(verb)
        failing = verb == "copy_image" and len(copies) == 1
        return Plan(result=HostResult.FAILURE if failing else HostResult.SUCCESS)

    world = World(sqlite_store, SimulatedAgent(decide=first_copy_fails))
    engine = world.engine(on_commit=RootTracer(sqlite_store, provider),
                          retry=RetryPolicy(max_attempts=2))
    root = world.submit_vm(engine, disks=1)
    engine.run_until_idle()
    commands, tasks = sqlite_store.tree(root)
    by_object = assert_whole_tree(exporter.get_finished_spans(), root, commands, tasks)
    assert by_object[root].status.status_code == StatusCode.UNSET  # it succeeded
    attempts = sorted((t.attempt, t) for t in tasks)
    assert [a for a, _ in attempts] == [1, 2]
    failed, succeeded = (by_object[t.id] for _, t in attempts)
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes or {})["endaction.task.retried"] is True
    assert succeeded.status.status_code == StatusCode.UNSET
    assert failed.parent == succeeded.parent, "both attempts under their command"
    clone = next(c for c in commands if c.type == "CreateCloneOfTemplate")
    assert "retry" in [e.name for e in by_object[clone.id].events]


def test_nothing_is_read_while_nothing_records(sqlite_store: SqlStore) -> None:
    """The API's default provider (or one that samples the root out) costs no tree read."""
    world = World(sqlite_store)
    root = _rolled_back_vm(world, RootTracer(sqlite_store))
    reads: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            reads.append(name)
            return getattr(sqlite_store, name)

    quiet = RootTracer(Counting(), trace.NoOpTracerProvider())  # type: ignore[arg-type]
    assert not quiet.enabled
    assert quiet.export(root) == 0
    quiet(TickReport(ended_roots=[root]))
    assert reads == []
    on_commit = reads.append
    assert traced(sqlite_store, on_commit, trace.NoOpTracerProvider()) is on_commit
    dropped = TracerProvider(sampler=ALWAYS_OFF)
    assert RootTracer(Counting(), dropped).export(root) == 0  # type: ignore[arg-type]
    assert reads == ["command"], "a sampled-out root reads its own row only"


def test_a_failing_read_is_logged_and_never_stops_the_engine(
    sqlite_store: SqlStore, collected: tuple[TracerProvider, InMemorySpanExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, exporter = collected

    class Broken(RootTracer):
        def export(self, root_id: str) -> int:
            raise RuntimeError("the database went away")

    world = World(sqlite_store)
    root = _rolled_back_vm(world, Broken(sqlite_store, provider))
    assert sqlite_store.command(root).status == "ended_failure"  # type: ignore[union-attr]
    assert f"the trace of root {root} was not emitted" in caplog.text
    assert exporter.get_finished_spans() == ()


def test_two_builds_of_one_root_are_the_same_trace(
    sqlite_store: SqlStore, collected: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """As two processes would build it: same ids, same parents, same times."""
    provider, exporter = collected
    root = _rolled_back_vm(World(sqlite_store), RootTracer(sqlite_store, provider))
    first = sorted(_shape(exporter.get_finished_spans()))
    exporter.clear()
    other = InMemorySpanExporter()
    elsewhere = TracerProvider()
    elsewhere.add_span_processor(SimpleSpanProcessor(other))
    assert RootTracer(sqlite_store, elsewhere).export(root) == len(first)
    assert sorted(_shape(other.get_finished_spans())) == first


def _shape(spans: Spans) -> list[tuple[Any, ...]]:
    return [(s.name, s.context.trace_id if s.context else None,
             s.context.span_id if s.context else None, s.parent.span_id if s.parent else None,
             s.start_time, s.end_time, len(s.events)) for s in spans]


def test_without_planned_ids_the_root_hangs_under_a_remote_parent_of_its_trace(
    sqlite_store: SqlStore, collected: tuple[TracerProvider, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tracer that is not the SDK's cannot be given ids: the trace id still is the root's."""
    monkeypatch.setattr(tracing_module, "plan_ids", lambda tracer: False)
    provider, exporter = collected
    root = _rolled_back_vm(World(sqlite_store), RootTracer(sqlite_store, provider))
    commands, tasks = sqlite_store.tree(root)
    spans = exporter.get_finished_spans()
    assert len(spans) == len(commands) + len(tasks)
    assert {s.context.trace_id for s in spans if s.context} == {int(root, 16)}
    root_span = _by_object(spans)[root]
    assert root_span.parent is not None and root_span.parent.is_remote


def test_a_tree_over_max_spans_gets_its_root_span_only(
    sqlite_store: SqlStore, collected: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = collected
    root = _rolled_back_vm(World(sqlite_store), RootTracer(sqlite_store, provider,
                                                           max_spans=5))
    (span,) = exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert (attributes["endaction.command.id"], attributes["endaction.trace.spans_left_out"]
            ) == (root, 12)
    assert [e.name for e in span.events][-1] == "rolled_back"


@pytest.mark.slow
@pytest.mark.parametrize("crash_after", [2, 5])
def test_a_root_resumed_after_a_sigkill_is_still_one_whole_trace(
    tmp_path: Path, collected: tuple[TracerProvider, InMemorySpanExporter], crash_after: int,
) -> None:
    """The demo dies (SIGKILL) part-way, and its root is still one whole trace.

    The engine that resumes it ends the root and emits the trace of the whole tree, from before the
    crash too, with the recovery in it.
    """
    db, storage = tmp_path / "demo.db", tmp_path / "storage"
    crashed = subprocess.run(
        [sys.executable, "-m", "statemachines.cli", "demo", "--images", "3", "--fail", "1",
         "--crash-after", str(crash_after), "--db", str(db), "--storage", str(storage)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    assert crashed.returncode == -9, crashed.stderr
    provider, exporter = collected
    world = open_app(vm_app, str(db), AgentChoice(storage=storage), create=False)
    try:
        world.engine.on_commit = RootTracer(world.store, provider)
        world.engine.recover()
        world.engine.run_until_idle()
        root = world.store.last_root_id()
        assert root is not None
        commands, tasks = world.store.tree(root)
        history = world.store.history_of_root(root)
    finally:
        world.close()
    spans = exporter.get_finished_spans()
    by_object = assert_whole_tree(spans, root, commands, tasks)
    assert len(commands) == 7
    events = [(e.name, dict(e.attributes or {})) for s in spans for e in s.events]
    recovered = [name for name, attributes in events if name == "recover"
                 or "crash" in str(attributes.get("endaction.detail", ""))]
    assert recovered, "the crash shows in the trace as the recovery the history recorded"
    # Steps taken before the crash are in it, with their own times.
    first_execute = next(h for h in history if h.object_id == root and h.trigger == "execute")
    assert any(e.name == "execute" and e.timestamp == round(first_execute.at * 1e9)
               for e in by_object[root].events)
