"""Engines for tests, with defaults and keyword overrides.

Build one by hand only where its construction is what the test is about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from persistence import SqlStore
from statemachines import Agent, Command, CommandRegistry, Engine
from statemachines.example.vm import STORAGE_AGENT, VM_COMMANDS
from statemachines.testing import ManualClock


def make_engine(
    store: SqlStore,
    agents: Mapping[str, Agent] | Agent,
    *,
    commands: Iterable[type[Command]] = (),
    registry: CommandRegistry | None = None,
    clock: ManualClock | None = None,
    **overrides: Any,
) -> Engine:
    """An engine on a manual clock (it sleeps by moving the clock).

    Args:
        store: the store the engine runs on.
        agents: the agents by name, or one agent, which is then the VM example's "storage".
        commands: command types to register beside the VM example's.
        registry: the whole registry instead (then `commands` is ignored).
        clock: the manual clock to run on, shared with the caller (a new one by default).
        overrides: any other Engine keyword (policy, limits, on_commit, sleep, ids).
    """
    clock = clock or ManualClock()
    named = agents if isinstance(agents, Mapping) else {STORAGE_AGENT: agents}
    overrides.setdefault("sleep", clock.sleep)
    return Engine(store, named, registry or CommandRegistry([*VM_COMMANDS, *commands]),
                  clock=clock, **overrides)
