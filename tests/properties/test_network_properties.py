"""The property suite over the network example: no rollback loops, nothing left behind."""

from __future__ import annotations

from pathlib import Path

from persistence import open_store
from statemachines import Store
from statemachines.example.network import NETWORK_LEDGERS
from statemachines.example.network.scenario import network_scenario
from statemachines.testing import engine_machine


def sqlite_file(folder: Path) -> Store:
    return open_store(str(folder / "net.db"), ledgers=NETWORK_LEDGERS)


TestNetworkProperties = engine_machine(network_scenario(sqlite_file)).TestCase
