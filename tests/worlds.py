"""A small world for tests: a store, the simulated agent, an engine on a fake clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from persistence import SqlStore, open_store
from statemachines import (
    CommandStatus,
    Engine,
    RevertPolicy,
    TaskRecord,
    TaskReport,
    TaskStatus,
    TickReport,
)
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import (
    ImageInventory,
    ImageRow,
    SimulatedAgent,
    add_vm_parameters,
)
from statemachines.testing import ManualClock
from tests.factories import make_engine

FakeClock = ManualClock


class Died(BaseException):
    """Stands for the process dying: nothing catches it, nothing after it runs."""


@dataclass
class DyingAgent(SimulatedAgent):
    """Dies in the middle of its n-th call: after the agent acted, before the engine committed."""

    die_in_call: int | None = None
    calls: int = 0

    def _called(self) -> None:
        self.calls += 1
        if self.die_in_call is not None and self.calls == self.die_in_call:
            self.die_in_call = None
            raise Died

    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        super().start(task_id, verb, parameters)
        self._called()

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        answer = super().poll(task_ids)
        self._called()
        return answer

    def clear(self, task_id: str) -> None:
        super().clear(task_id)
        self._called()


def vm_store(url: str, **options: Any) -> SqlStore:
    """A store for the VM example: its image inventory registered as a ledger."""
    return open_store(url, ledgers=[ImageInventory], **options)


def terminal_arrivals(store: SqlStore, root_id: str) -> Counter[str]:
    """How often each command of the root reached a terminal state, from the transitions history.

    Exactly once, for every command, is the promise.
    """
    # A cleanup's rows note what happened to a command that had ended (source == dest):
    # they move nothing, so they are no arrival.
    return Counter(h.object_id for h in store.history_of_root(root_id)
                   if h.object_kind == "command" and h.dest in TERMINAL_COMMAND_STATES
                   and h.source != h.dest)


def images_in(store: SqlStore) -> list[ImageRow]:
    """The example's image inventory, read from the store's database."""
    return ImageInventory.read_all(store.engine)


@dataclass
class World:
    store: SqlStore
    agent: SimulatedAgent = field(default_factory=SimulatedAgent)
    clock: FakeClock = field(default_factory=FakeClock)
    policy: RevertPolicy = field(default_factory=RevertPolicy)

    def engine(self, on_commit: Callable[[TickReport], None] | None = None,
               **overrides: Any) -> Engine:
        """An engine of this world (its store, agent, clock and policy).

        `overrides` are as for `make_engine` (commands, registry, limits, ...).
        """
        overrides.setdefault("policy", self.policy)
        agents = overrides.pop("agents", self.agent)  # e.g. this world's agent behind HTTP
        return make_engine(self.store, agents, clock=self.clock, on_commit=on_commit,
                           **overrides)

    def submit_vm(self, engine: Engine, disks: int, fail: tuple[int, ...] = (),
                  vm: str = "vm1") -> str:
        sources = [f"template-disk{i}" for i in range(disks)]
        return engine.submit("AddVmFromTemplate", add_vm_parameters(vm, sources, fail))

    def run_to_success(self, engine: Engine, disks: int) -> None:
        """Run a VM that must succeed despite whatever the agent does, and check that it did."""
        root = self.submit_vm(engine, disks)
        engine.run_until_idle()
        commands, tasks = self.store.tree(root)
        assert next(c.status for c in commands if c.id == root) == CommandStatus.ENDED_SUCCESS
        assert all(t.host_result == "success" for t in tasks)

    def end_state(self, root_id: str) -> dict[str, object]:
        """What a run ends as, independent of ids and timing: for crash/no-crash comparisons."""
        commands, tasks = self.store.tree(root_id)
        return {
            "commands": sorted((c.type, c.entity_id or "", c.status, c.execution_reason,
                                c.outcome or "") for c in commands),
            "tasks_not_cleared": [t.id for t in tasks if t.status != TaskStatus.CLEARED],
            "inventory": images_in(self.store),
            "agent_images": sorted(self.agent.images),
        }

    def copy_task(self, root_id: str) -> TaskRecord:
        """The (first) copy task of a VM: where what the agent said ends up."""
        _, tasks = self.store.tree(root_id)
        return next(t for t in tasks if t.verb == "copy_image")

    def ends_per_command(self, root_id: str) -> Counter[str]:
        return Counter(h.object_id for h in self.store.history_of_root(root_id)
                       if h.object_kind == "command" and h.trigger == "end")
