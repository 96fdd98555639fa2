"""Prometheus metrics, in-process: every counter, histogram and gauge agrees with the database.

A worker on a SQLite file (and on PostgreSQL) with the simulated agent rolls a root back, and the
metrics are checked against what the database holds.

Each test reads a registry of its own (`EngineMetrics()`, `HostMetrics()`), never the process-wide
default one, so no test sees another's counts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from persistence import SqlStore
from statemachines import (
    Abortable,
    AgentUnreachable,
    Engine,
    ExecutionReason,
    HostResult,
    RevertPolicy,
    StoreUnavailable,
    TaskRejected,
    TickReport,
    Worker,
    WorkerLease,
)
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.core.records.revert_state import RevertState
from statemachines.example.vm import (
    DELETE_VERB,
    STORAGE_AGENT,
    LocalDiskAgent,
    Plan,
    SimulatedAgent,
    add_vm_parameters,
    image_name,
    vm_registry,
)
from statemachines.example.vm.remote_storage import RemoteStorage
from statemachines.example.vm.simulated import default_plan
from statemachines.example.vm.storage_host import storage_app
from statemachines.observability import EngineMetrics, HostMetrics
from statemachines.observability.metered_agent import metered
from statemachines.observability.metric_collectors import RevertFailedCollector
from tests.http_hosts import TOKEN, served
from tests.worlds import World

FAILING = image_name("vm1", 2)  # its delete always fails: left revert_failed


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _failing_delete(verb: str, parameters: Mapping[str, Any]) -> Plan:
    if verb == DELETE_VERB and parameters.get("image") == FAILING:
        return Plan(result=HostResult.FAILURE)
    return default_plan(verb, parameters)


def _run_worker(engine: Engine, metrics: EngineMetrics, roots: int) -> Worker:
    """Run a real `Worker` loop on a thread until `roots` roots have ended and their trees finished.

    Finished means every task cleared (no lease row left); the wait is bounded. A root ends a tick
    before its last tasks are cleared, and a stop in between would leave those clears not done.
    """
    worker = Worker(engine, interval=0.05, on_tick=metrics.on_tick)
    metrics.watch(engine, worker,
                  revert_failed=lambda: _store(engine).count_reverts(RevertState.REVERT_FAILED))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while worker.totals.roots_ended < roots or _store(engine).leases():
        assert thread.is_alive() and time.monotonic() < deadline, worker.totals
        time.sleep(0.02)
    worker.stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return worker


def _store(engine: Engine) -> SqlStore:
    assert isinstance(engine.store, SqlStore)
    return engine.store


def test_a_rolled_back_root_is_counted_as_the_database_has_it(store: SqlStore) -> None:
    metrics = EngineMetrics()
    agent = SimulatedAgent(decide=_failing_delete)
    engine = Engine(store, metrics.meter({STORAGE_AGENT: agent}), vm_registry(),
                    policy=RevertPolicy(max_attempts=2, backoff_seconds=0),
                    lease=WorkerLease(owner="w1", claim_interval=0.05),
                    on_commit=metrics.on_commit)
    failed = engine.submit("AddVmFromTemplate", add_vm_parameters(
        "vm1", [f"template-disk{i}" for i in range(4)], fail=[1]))
    succeeded = engine.submit("AddVmFromTemplate",
                              add_vm_parameters("vm2", ["template-disk0"]))
    worker = _run_worker(engine, metrics, roots=2)
    registry = metrics.registry

    commands = [c for root in (failed, succeeded) for c in store.tree(root)[0]]
    tasks = [t for root in (failed, succeeded) for t in store.tree(root)[1]]
    assert _value(registry, "endaction_roots_ended_total", result="failed") == 1
    assert _value(registry, "endaction_roots_ended_total", result="succeeded") == 1

    # Every command's end, by type, status and flow, as the database holds it.
    flows = {ExecutionReason.REGULAR_FLOW: "regular", ExecutionReason.ROLLBACK_FLOW: "rollback"}
    ends = Counter((c.type, str(c.status), flows[c.execution_reason]) for c in commands)
    assert all(c.status in TERMINAL_COMMAND_STATES for c in commands)
    for (type_name, status, flow), count in ends.items():
        assert _value(registry, "endaction_command_transitions_total", type=type_name,
                      status=status, flow=flow) == count, (type_name, status, flow)
    assert _value(registry, "endaction_command_transitions_total", type="AddVmFromTemplate",
                  status="rolling_back", flow="regular") == 1

    # Tasks: each ended once with the result the agent gave, and was cleared once.
    for (verb, result), count in Counter((t.verb, str(t.host_result)) for t in tasks).items():
        assert _value(registry, "endaction_tasks_ended_total", verb=verb, result=result) == count
    for verb, count in Counter(t.verb for t in tasks).items():
        assert _value(registry, "endaction_task_transitions_total", verb=verb,
                      status="cleared") == count

    # Compensations: started, and ended by outcome, as the opposite commands ended.
    opposite = [c for c in commands if c.execution_reason == ExecutionReason.ROLLBACK_FLOW]
    assert _value(registry, "endaction_compensations_started_total") == len(opposite)
    outcomes = Counter(str(c.outcome) for c in opposite)
    assert outcomes["attempt_failed"] == 2 and outcomes["reverted"] >= 2  # max_attempts=2
    for outcome, count in outcomes.items():
        assert _value(registry, "endaction_compensations_ended_total", type="RemoveImage",
                      outcome=outcome) == count

    # What is read at scrape time: the gauge from the database, the worker's own numbers.
    assert store.count_reverts(RevertState.REVERT_FAILED) == 1
    assert _value(registry, "endaction_revert_failed_resources") == 1
    assert _value(registry, "endaction_roots_held", worker="w1") == 0
    assert _value(registry, "endaction_lease_takeovers_total", worker="w1") == 0
    assert _value(registry, "endaction_database_outages_total", worker="w1") == 0

    # Every tick timed; the committed ones are exactly those the worker counted.
    totals = worker.totals
    assert _value(registry, "endaction_tick_duration_seconds_count",
                  committed="true") == totals.committed
    assert (_value(registry, "endaction_tick_duration_seconds_count", committed="true")
            + _value(registry, "endaction_tick_duration_seconds_count", committed="false")
            ) == totals.ticks
    assert _value(registry, "endaction_tick_duration_seconds_sum", committed="true") > 0

    # Agent calls, timed by call: one clear per task, a start per task at least.
    def calls(call: str) -> float:
        return _value(registry, "endaction_agent_call_duration_seconds_count",
                      agent=STORAGE_AGENT, call=call)

    assert calls("clear") == len(tasks)
    assert calls("start") >= len(tasks) and calls("poll") >= 1
    assert _value(registry, "endaction_agent_call_duration_seconds_sum", agent=STORAGE_AGENT,
                  call="poll") > 0
    assert registry.get_sample_value("endaction_agent_call_errors_total",
                                     {"agent": STORAGE_AGENT, "call": "start",
                                      "error": "failed"}) is None


def test_a_takeover_is_counted_by_the_worker_that_took_the_roots(store: SqlStore) -> None:
    """The heir's counter says how many roots it took over from a dead worker.

    The worker died holding roots under way; the count is as many as the heir wrote "taken over by"
    rows for.
    """
    world = World(store)
    lease = {"ttl": 3.0, "claim_interval": 0.1}
    dead = world.engine(lease=WorkerLease(owner="dead", **lease))
    roots = [world.submit_vm(dead, disks=2, vm=f"vm{i}") for i in range(3)]
    dead.tick()
    world.clock.sleep(0.2)
    dead.tick()
    metrics = EngineMetrics()
    heir = world.engine(lease=WorkerLease(owner="heir", **lease), on_commit=metrics.on_commit)
    metrics.watch(heir)
    registry = metrics.registry
    world.clock.sleep(4.0)  # the dead worker's leases lapse
    heir.tick()
    assert _value(registry, "endaction_lease_takeovers_total", worker="heir") == 3
    assert _value(registry, "endaction_roots_held", worker="heir") == 3
    heir.run_until_idle()
    assert _value(registry, "endaction_roots_held", worker="heir") == 0
    rows = [h for root in roots for h in store.history_of_root(root)
            if h.trigger == "recover" and (h.detail or "").startswith("taken over by heir")]
    assert len(rows) == 3
    assert _value(registry, "endaction_roots_ended_total", result="succeeded") == 3


def test_outages_and_the_revert_gauge_are_read_at_scrape_time(store: SqlStore) -> None:
    """The worker's outages are its own totals, read when scraped (no hook in the loop).

    A scrape while the database is down leaves the revert gauge out and the rest in.
    """
    metrics = EngineMetrics()
    engine = Engine(store, metrics.meter({STORAGE_AGENT: SimulatedAgent()}), vm_registry(),
                    lease=WorkerLease(owner="w1", claim_interval=0.05),
                    on_commit=metrics.on_commit)
    real_tick = engine.tick
    cuts = iter(range(2))

    def cut_twice() -> TickReport:
        if next(cuts, None) is not None:
            raise StoreUnavailable("database sqlite://test is unavailable (simulated)")
        return real_tick()

    engine.tick = cut_twice  # type: ignore[method-assign]
    engine.submit("AddVmFromTemplate", add_vm_parameters("vm1", ["template-disk0"]))
    _run_worker(engine, metrics, roots=1)
    assert _value(metrics.registry, "endaction_database_outages_total", worker="w1") == 2

    down = CollectorRegistry()

    def unavailable() -> int:
        raise StoreUnavailable("database sqlite://test is unavailable (simulated)")

    down.register(RevertFailedCollector(unavailable))
    assert down.get_sample_value("endaction_revert_failed_resources") is None
    assert _value(metrics.registry, "endaction_roots_ended_total", result="succeeded") == 1


class _Plain:
    """An agent that cannot abort, with a method of its own."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        if self.fail is not None:
            raise self.fail

    def poll(self, task_ids: Any) -> dict[str, Any]:
        return {}

    def clear(self, task_id: str) -> None:
        pass

    def inventory(self) -> str:
        return "its own"


def test_a_metered_agent_is_the_agent_to_everyone_but_the_clock() -> None:
    metrics = EngineMetrics()
    plain = metered("plain", _Plain(), metrics.agent_calls)
    abortable = metered("sim", SimulatedAgent(), metrics.agent_calls)
    assert not isinstance(plain, Abortable), "an agent that cannot abort must not seem to"
    assert isinstance(abortable, Abortable)
    assert plain.inventory() == "its own" and plain.metered.__class__ is _Plain
    assert abortable.images == set()  # the agent's own attributes, through the proxy
    abortable.start("t1", "copy_image", {"image": "a", "source": "b"})
    abortable.abort("t1")
    registry = metrics.registry
    assert _value(registry, "endaction_agent_call_duration_seconds_count", agent="sim",
                  call="abort") == 1
    for error, label in ((TaskRejected("no such verb"), "rejected"),
                         (AgentUnreachable("no answer"), "unreachable"),
                         (OSError("disk"), "failed")):
        failing = metered("bad", _Plain(fail=error), metrics.agent_calls)
        with pytest.raises(type(error)):
            failing.start("t", "v", {})
        assert _value(registry, "endaction_agent_call_errors_total", agent="bad",
                      call="start", error=label) == 1
    assert _value(registry, "endaction_agent_call_duration_seconds_count", agent="bad",
                  call="start") == 3


def test_two_metrics_objects_never_share_a_registry() -> None:
    first, second = EngineMetrics(), EngineMetrics()
    first.roots_ended.labels("failed").inc()
    assert _value(second.registry, "endaction_roots_ended_total", result="failed") == 0
    assert _value(first.registry, "endaction_roots_ended_total", result="failed") == 1


def _host(tmp_path: Path, token: str | None) -> tuple[HostMetrics, LocalDiskAgent, Any]:
    metrics = HostMetrics()
    disk = LocalDiskAgent(tmp_path / "storage", on_task_end=metrics.task_ended)
    disk.ensure_template("template-disk0", 64 << 10)
    metrics.watch_tasks(lambda: disk.tasks_running)
    return metrics, disk, metrics.serving(storage_app(disk, TOKEN), token)


def test_a_task_host_counts_its_requests_by_route_and_guards_its_metrics(
        tmp_path: Path) -> None:
    metrics, disk, app = _host(tmp_path, TOKEN)
    try:
        with served(app) as url:
            remote = RemoteStorage(url, TOKEN)
            remote.start("task1", "copy_image", {"image": "vm1-disk0",
                                                 "source": "template-disk0"})
            deadline = time.monotonic() + 30
            while remote.poll(["task1"])["task1"].status != "finished":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            remote.clear("task1")
            remote.close()
            refused = httpx.post(f"{url}/v1/poll", json={"task_ids": []})
            assert refused.status_code == 401
            assert httpx.get(f"{url}/metrics").status_code == 401
            scraped = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert scraped.status_code == 200
            assert "endaction_host_requests_total" in scraped.text
    finally:
        disk.close()
    registry = metrics.registry
    task = "/v1/tasks/{task_id}"
    assert _value(registry, "endaction_host_requests_total", route=task, method="PUT",
                  status="200") == 1
    assert _value(registry, "endaction_host_requests_total", route=task, method="DELETE",
                  status="200") == 1
    assert _value(registry, "endaction_host_requests_total", route="/v1/poll", method="POST",
                  status="200") >= 1
    # Refused before routing: counted, but never under the path the caller sent.
    assert _value(registry, "endaction_host_requests_total", route="unrouted", method="POST",
                  status="401") == 1
    assert _value(registry, "endaction_host_requests_total", route="/metrics", method="GET",
                  status="401") == 1
    assert _value(registry, "endaction_host_request_duration_seconds_count", route=task,
                  method="PUT") == 1
    assert _value(registry, "endaction_host_task_duration_seconds_count", verb="copy_image",
                  result="success") == 1
    assert _value(registry, "endaction_host_tasks_running") == 0


def test_a_task_host_with_open_metrics_serves_them_without_the_token(tmp_path: Path) -> None:
    metrics, disk, app = _host(tmp_path, None)
    try:
        with served(app) as url:
            scraped = httpx.get(f"{url}/metrics")
            assert scraped.status_code == 200
            assert "endaction_host_tasks_running 0.0" in scraped.text
            # Only the metrics are open: the task protocol still asks for the token.
            assert httpx.post(f"{url}/v1/poll", json={"task_ids": []}).status_code == 401
    finally:
        disk.close()
    assert _value(metrics.registry, "endaction_host_requests_total", route="/metrics",
                  method="GET", status="200") == 1
