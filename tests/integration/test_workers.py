"""Several workers on one database, against a SQLite file and the real PostgreSQL.

Roots are leased, never shared; a dead worker's roots are taken over when its leases lapse; a worker
whose lease was taken over cannot commit; a client submits without running anything.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter

import pytest

from persistence import SqlStore
from statemachines import (
    AgentError,
    Command,
    CommandRegistry,
    CommandStatus,
    Engine,
    LeaseLost,
    WorkerLease,
    WorkersHoldRoots,
    submit_root,
)
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import (
    VM_COMMANDS,
    SimulatedAgent,
    add_vm_parameters,
    image_name,
    vm_registry,
)
from tests.worlds import World, images_in, terminal_arrivals

TTL = 30.0


def _worker(world: World, name: str, **lease: object) -> Engine:
    return world.engine(lease=WorkerLease(owner=name, ttl=TTL, claim_interval=0.1,
                                          **lease))  # type: ignore[arg-type]


def _submit(world: World, count: int, fail_every: int = 3) -> list[str]:
    """Roots written by a client that runs nothing; every `fail_every`-th has a failing disk."""
    return [submit_root(world.store, vm_registry(), "AddVmFromTemplate",
                        add_vm_parameters(f"vm{i}", ["template-disk0", "template-disk1"],
                                          [1] if i % fail_every == 0 else []),
                        clock=world.clock).id
            for i in range(count)]


def _run(world: World, workers: list[Engine], roots: list[str], ticks: int = 400) -> None:
    for _ in range(ticks):
        for engine in workers:
            with contextlib.suppress(LeaseLost):  # a worker that lost a root goes on
                engine.tick()
        world.clock.sleep(0.2)
        if all(world.store.command(r).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
               for r in roots) and not world.store.leases():
            return
    raise AssertionError(f"not all roots ended; leases left: {world.store.leases()}")


def _ends_once(world: World, roots: list[str]) -> None:
    for root in roots:
        ends = terminal_arrivals(world.store, root)
        assert ends and set(ends.values()) == {1}, (root, ends)


def _nothing_left(world: World, roots: list[str]) -> None:
    """No lease held, and exactly the images of the VMs that were created exist.

    That holds on the storage and in the inventory: everything else was rolled back.
    """
    assert world.store.leases() == []
    created = {root for root in roots
               if world.store.command(root).status == CommandStatus.ENDED_SUCCESS}  # type: ignore[union-attr]
    expected = {image_name(world.store.command(root).parameters["vm"], d)  # type: ignore[union-attr]
                for root in created for d in (0, 1)}
    assert world.agent.images == expected
    assert {row.id for row in images_in(world.store)} == expected


def test_two_workers_share_the_roots_and_never_the_same_one(store: SqlStore) -> None:
    world = World(store)
    roots = _submit(world, 12)
    first, second = _worker(world, "w1", claim_batch=2), _worker(world, "w2", claim_batch=2)
    seen: dict[str, set[str]] = {"w1": set(), "w2": set()}
    for _ in range(400):
        for name, engine in (("w1", first), ("w2", second)):
            engine.tick()
            seen[name] |= {c.root_id for c in engine._view.commands.values()}
        assert not (set(first._roots) & set(second._roots)), "one root leased to both"
        world.clock.sleep(0.2)
        if not world.store.leases():
            break
    assert seen["w1"] and seen["w2"], f"the work was not shared: {seen}"
    assert seen["w1"].isdisjoint(seen["w2"])
    statuses = Counter(store.command(r).status for r in roots)  # type: ignore[union-attr]
    assert statuses == {CommandStatus.ENDED_SUCCESS: 8, CommandStatus.ENDED_FAILURE: 4}
    _ends_once(world, roots)
    _nothing_left(world, roots)


def test_a_dead_workers_roots_are_taken_over_once_its_leases_lapse(store: SqlStore) -> None:
    world = World(store)
    roots = _submit(world, 4)
    dead = _worker(world, "dead")
    for _ in range(3):
        dead.tick()  # it claims, executes, starts copies ... and dies (never releases)
        world.clock.sleep(0.2)
    assert {owner for _, owner, _ in store.leases()} == {"dead"}
    heir = _worker(world, "heir")
    heir.tick()
    assert not heir._roots, "took over live leases"
    world.clock.sleep(TTL + 1)
    _run(world, [heir], roots)
    _ends_once(world, roots)
    _nothing_left(world, roots)


def test_a_worker_whose_lease_was_taken_over_cannot_commit(store: SqlStore) -> None:
    world = World(store)
    roots = _submit(world, 2, fail_every=100)
    commits: list[int] = []
    paused = world.engine(lease=WorkerLease(owner="paused", ttl=TTL, claim_interval=0.1),
                          on_commit=lambda report: commits.append(report.number))
    paused.tick()
    paused.tick()
    assert commits, "the paused worker never worked"
    world.clock.sleep(TTL + 1)  # a long pause: its leases lapse
    heir = _worker(world, "heir")
    heir.tick()
    assert heir._roots == set(roots)
    commits.clear()
    with pytest.raises(LeaseLost):
        for _ in range(5):
            paused.tick()
    assert commits == [], "a worker whose roots were taken over committed a tick"
    _run(world, [heir, paused], roots)
    assert not paused._roots
    _ends_once(world, roots)
    _nothing_left(world, roots)


def test_a_stopping_worker_gives_its_roots_back_at_once(store: SqlStore) -> None:
    world = World(store)
    roots = _submit(world, 3)
    leaving = _worker(world, "leaving")
    leaving.tick()
    assert leaving.release() == 3
    assert {owner for _, owner, _ in store.leases()} == {None}
    _run(world, [_worker(world, "staying")], roots)
    _ends_once(world, roots)


def test_a_single_engine_refuses_to_race_workers(store: SqlStore) -> None:
    world = World(store)
    _submit(world, 1)
    _worker(world, "w1").tick()
    with pytest.raises(WorkersHoldRoots, match="w1"):
        world.engine().tick()


def test_a_worker_holds_at_most_its_share(store: SqlStore) -> None:
    world = World(store)
    _submit(world, 10)
    greedy = _worker(world, "greedy", max_roots=4)
    for _ in range(5):
        greedy.tick()
        world.clock.sleep(0.2)
        assert len(greedy._roots) <= 4
    assert sum(owner == "greedy" for _, owner, _ in store.leases()) <= 4


def test_single_engine_keeps_the_lease_rows_of_its_roots(store: SqlStore) -> None:
    """The single-engine default writes the lease rows too.

    That way workers can take over the database later; the rows go when a tree is finished.
    """
    world = World(store)
    engine = world.engine()
    root = world.submit_vm(engine, 2, fail=(1,))
    assert [r for r, _, _ in store.leases()] == [root]
    engine.run_until_idle()
    assert store.leases() == []


@pytest.mark.postgres
def test_concurrent_claims_on_postgres_never_overlap(store: SqlStore) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises writers")
    world = World(store)
    _submit(world, 40)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def claim(name: str) -> None:
        barrier.wait()
        got[name] = store.claim_roots(name, world.clock(), world.clock() + TTL, 15)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    claimed = [root for roots in got.values() for root in roots]
    assert len(claimed) == len(set(claimed)) == 40


def test_a_single_engines_roots_are_never_claimed_by_a_worker(store: SqlStore) -> None:
    world = World(store)
    single = world.engine()
    mine = world.submit_vm(single, 2, fail=(1,), vm="single")
    single.tick()
    worker = _worker(world, "w1")
    free = _submit(world, 2)
    seen: set[str] = set()
    for _ in range(5):
        worker.tick()
        seen |= worker._roots
        world.clock.sleep(0.2)
    assert mine not in seen and set(free) <= seen
    assert {owner for root, owner, _ in store.leases() if root == mine} == {"single-engine"}


def test_a_single_engine_refuses_before_it_writes_anything(store: SqlStore) -> None:
    world = World(store)
    _submit(world, 1)
    _worker(world, "w1").tick()
    roots_before = store.root_ids()
    with pytest.raises(WorkersHoldRoots):
        world.submit_vm(world.engine(), 1)
    assert store.root_ids() == roots_before


def test_a_root_a_worker_cannot_run_is_held_and_the_others_go_on(store: SqlStore) -> None:
    world = World(store)
    roots = _submit(world, 3, fail_every=100)
    stranger = submit_root(store, CommandRegistry([*VM_COMMANDS, ResizeVm]), "ResizeVm", {},
                           clock=world.clock).id
    worker = _worker(world, "w1")
    for _ in range(200):
        worker.tick()
        world.clock.sleep(0.2)
        if all(store.command(r).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
               for r in roots) and store.leases() == [(stranger, "w1", store.leases()[0][2])]:
            break
    assert stranger in store.held_roots()
    assert "ResizeVm" in store.held_roots()[stranger]
    assert stranger in {root for root, _, _ in store.leases()}, \
        "the held root lost its lease row: nobody would run it once released"
    statuses = [store.command(r).status for r in roots]  # type: ignore[union-attr]
    assert statuses == [CommandStatus.ENDED_FAILURE, CommandStatus.ENDED_SUCCESS,
                        CommandStatus.ENDED_SUCCESS]  # vm0 has a failing disk
    assert worker._loaded, "the worker stopped"
    # Released, it goes to a worker that knows the type once w1's lease on it lapsed.
    assert store.release_root(stranger)
    world.clock.sleep(TTL + 1)
    newer = world.engine(registry=CommandRegistry([*VM_COMMANDS, ResizeVm]),
                         lease=WorkerLease(owner="w2", ttl=TTL, claim_interval=0.1))
    _run(world, [newer], [stranger])
    assert store.command(stranger).status == CommandStatus.ENDED_SUCCESS  # type: ignore[union-attr]


class ResizeVm(Command):
    """A command type a newer client knows and these workers do not."""

    type_name = "ResizeVm"


class ClearRefusing(SimulatedAgent):
    def clear(self, task_id: str) -> None:
        raise AgentError("the host will not forget anything today")


def test_roots_stuck_on_refused_clears_do_not_take_a_workers_share(store: SqlStore) -> None:
    world = World(store, agent=ClearRefusing())
    roots = _submit(world, 4, fail_every=100)
    worker = _worker(world, "w1", max_roots=2)
    for _ in range(400):
        worker.tick()
        world.clock.sleep(1.0)
        if all(store.command(r).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
               for r in roots):
            break
    assert all(store.command(r).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
               for r in roots), "roots waiting behind clears the host refuses"
    for _ in range(200):  # the last ones park too once their clears are used up
        if all(owner is None for _, owner, _ in store.leases()):
            break
        worker.tick()
        world.clock.sleep(1.0)
    parked = store.leases()
    assert len(parked) == 4 and all(owner is None and expires > world.clock()
                                    for _, owner, expires in parked)
    assert not worker._roots
