"""A host that does not answer at all costs one call's timeout per tick, not one per task.

Found by the chaos test of a host frozen mid-rollback (tests/cli/test_host_stopped_mid_rollback.py):
a frozen host accepts connections and never answers, so each call waits out the client's
whole budget (30 s by default), and a tick made one call per task to start, clear or abort.
A rollback of a few dozen disks took hours to give up, its worker renewed no lease and heard no
SIGTERM meanwhile, and logged two lines per task per tick. Now the first call that finds the
agent silent (`AgentUnreachable`) is the last one that tick: the others are recorded on their
tasks as failed tries, with the reason, and said in one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from persistence import SqlStore
from statemachines import (
    AgentError,
    AgentUnreachable,
    CommandStatus,
    Limits,
    RevertPolicy,
    RevertState,
    TaskReport,
    TaskStatus,
)
from statemachines.example.vm import COPY_VERB, DELETE_VERB, Plan, SimulatedAgent
from statemachines.example.vm.simulated import default_plan
from statemachines.http import HttpAgent, host_app
from tests.http_hosts import TOKEN, free_port, served
from tests.worlds import World, images_in, terminal_arrivals

LIMITS = Limits(max_start_attempts=3, max_clear_attempts=3, max_poll_failures=3,
                agent_retry_seconds=0.0, max_agent_retry_seconds=0.0, task_timeout=600)


def _slow_deletes(verb: str, parameters: Mapping[str, Any]) -> Plan:
    """Deletes run for a few polls, so that the host can fall silent while they do."""
    return Plan(polls=3) if verb == DELETE_VERB else default_plan(verb, parameters)


@dataclass
class SilentHost(SimulatedAgent):
    """A host that, while `silent`, answers nothing.

    Each call is counted (standing for a timeout waited out) and raises AgentUnreachable, as
    HttpAgent does.
    """

    silent: bool = False
    calls_unanswered: int = 0

    def _silence(self, doing: str) -> None:
        if self.silent:
            self.calls_unanswered += 1
            raise AgentUnreachable(f"host did not answer to {doing} after 3 tries: "
                                   "ReadTimeout: timed out")

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        self._silence(f"start task {task_id}")
        super().start(task_id, verb, parameters)

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        self._silence(f"poll {len(task_ids)} task(s)")
        return super().poll(task_ids)

    def clear(self, task_id: str) -> None:
        self._silence(f"clear task {task_id}")
        super().clear(task_id)

    def abort(self, task_id: str) -> None:
        self._silence(f"abort task {task_id}")
        super().abort(task_id)


def _ends_once(world: World, root: str) -> None:
    arrivals = terminal_arrivals(world.store, root)
    commands, _ = world.store.tree(root)
    assert all(arrivals[c.id] == 1 for c in commands), arrivals


def test_a_silent_host_is_asked_once_per_tick_and_every_start_budget_runs_down(
        sqlite_store: SqlStore) -> None:
    host = SilentHost()
    world = World(sqlite_store, agent=host)
    engine = world.engine(limits=LIMITS)
    root = world.submit_vm(engine, 5)
    while not world.store.tree(root)[1]:
        engine.tick()  # until the copies are written, pending, not yet started
    host.silent = True
    report = engine.tick()
    assert host.calls_unanswered == 1
    assert len(report.errors) == 2, report.errors
    assert "did not answer to start task" in report.errors[0]
    assert report.errors[1] == ("agent 'storage' was not asked 4 more time(s) in this tick: it "
                                "did not answer before (each counts as a failed try)")
    _, tasks = world.store.tree(root)
    assert [t.attempts for t in tasks] == [1] * 5
    not_asked = [t for t in tasks if "was not asked to start" in (t.message or "")]
    assert len(not_asked) == 4 and all("did not answer" in (t.message or "") for t in not_asked)
    for _ in range(LIMITS.max_start_attempts - 1):
        world.clock.now += 1
        engine.tick()
    # Every copy gave up in the same tick, one call per tick spent on the silent host.
    assert host.calls_unanswered == LIMITS.max_start_attempts
    copies = [t for t in world.store.tree(root)[1] if t.verb == COPY_VERB]
    assert len(copies) == 5
    assert {t.status for t in copies} <= {TaskStatus.START_FAILED, TaskStatus.ENDING}, copies
    assert all("(gave up after 3)" in (t.message or "") for t in copies), copies
    host.silent = False
    engine.run_until_idle()
    assert world.store.command(root).status == CommandStatus.ENDED_FAILURE  # type: ignore[union-attr]
    assert host.images == set() and images_in(world.store) == []
    assert not {t.id for t in copies} & set(host.started), "a copy given up on ran after all"
    _ends_once(world, root)


def test_a_host_silent_mid_rollback_gives_up_within_the_bounds_and_cleanup_undoes_it(
        sqlite_store: SqlStore) -> None:
    host = SilentHost(decide=_slow_deletes)
    world = World(sqlite_store, agent=host,
                  policy=RevertPolicy(max_attempts=2, max_lost_attempts=1, backoff_seconds=0))
    engine = world.engine(limits=LIMITS)
    root = world.submit_vm(engine, 4, fail=(3,))

    def deletes() -> list[str]:
        return [t.status for t in world.store.tree(root)[1] if t.verb == DELETE_VERB]

    while not deletes() or set(deletes()) != {TaskStatus.POLLING}:
        engine.tick()
        world.clock.now += 0.1
    host.silent = True
    ticks = 0
    while not engine.is_idle() and ticks < 100:
        before = host.calls_unanswered
        engine.tick()
        assert host.calls_unanswered - before <= 1, "a silent host was asked twice in a tick"
        world.clock.now += 1
        ticks += 1
    assert engine.is_idle(), f"still busy after {ticks} ticks"
    assert world.store.command(root).status == CommandStatus.ROLLBACK_FAILED  # type: ignore[union-attr]
    left = {r.resource.id: r for r in world.store.reverts()}
    assert left and {r.state for r in left.values()} == {RevertState.REVERT_FAILED}
    assert all("did not answer" in (r.last_error or "") for r in left.values()), left
    # What was not undone is recorded: every image on the host is revert_failed.
    assert host.images <= set(left)
    host.silent = False
    cleanup = world.engine(limits=LIMITS)  # a process of its own, as `endaction cleanup` is
    cleanup.cleanup()
    cleanup.run_until_idle()
    assert {r.state for r in world.store.reverts()} == {RevertState.REVERTED}
    assert host.images == set() and images_in(world.store) == []
    _, tasks = world.store.tree(root)
    assert {t.status for t in tasks} == {TaskStatus.CLEARED}
    _ends_once(world, root)


def test_the_http_client_tells_silence_from_an_answer() -> None:
    silent = HttpAgent(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=0.5, retries=1,
                       backoff=0.01)
    with pytest.raises(AgentUnreachable, match="did not answer to start task t1 after 2 tries"):
        silent.start("t1", "copy_image", {"image": "i", "source": "s"})
    silent.close()
    with served(host_app(SimulatedAgent(unavailable=True), TOKEN)) as url:
        failing = HttpAgent(url, TOKEN, timeout=5, retries=1)
        with pytest.raises(AgentError) as raised:
            failing.poll(["t1"])
        failing.close()
    assert not isinstance(raised.value, AgentUnreachable), raised.value
    assert "503" in str(raised.value)  # the host's words: an error, not silence
