"""Several workers on one database: roots are leased, never shared; a dead worker's roots are
taken over when its leases lapse; a worker whose lease was taken over cannot commit; a client
submits without running anything. Against a SQLite file and the real PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter

import pytest

from persistence import SqlStore
from statemachines import (
    CommandStatus,
    Engine,
    LeaseLost,
    WorkerLease,
    WorkersHoldRoots,
    submit_root,
)
from statemachines.core.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import add_vm_parameters, image_name, vm_registry
from tests.worlds import World, images_in

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
        ends = Counter(h.object_id for h in world.store.history_of_root(root)
                       if h.object_kind == "command" and h.dest in TERMINAL_COMMAND_STATES)
        assert ends and set(ends.values()) == {1}, (root, ends)


def _nothing_left(world: World, roots: list[str]) -> None:
    """No lease held, and exactly the images of the VMs that were created exist, on the
    storage and in the inventory: everything else was rolled back."""
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
    paused = _worker(world, "paused")
    paused.tick()
    paused.tick()
    before = {r: [h.dest for h in store.history_of_root(r)] for r in roots}
    world.clock.sleep(TTL + 1)  # a long pause: its leases lapse
    heir = _worker(world, "heir")
    heir.tick()
    assert heir._roots == set(roots)
    with pytest.raises(LeaseLost):
        for _ in range(5):
            paused.tick()
    after_lost = {r: [h.dest for h in store.history_of_root(r)] for r in roots}
    # Whatever was written after the takeover is the heir's: the paused worker wrote nothing.
    assert all(after_lost[r][: len(before[r])] == before[r] for r in roots)
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
    """The single-engine default writes the rows too, so workers can take over the database
    later; they go when a tree is finished."""
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
