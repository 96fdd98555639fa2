"""The second domain, end to end: provision an endpoint, or undo every piece of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence import SqlStore, open_store
from statemachines import CommandStatus, ExecutionReason, Outcome
from statemachines.example.network import (
    NETWORK_AGENT,
    NETWORK_LEDGERS,
    AddressPool,
    DnsRecords,
    NetworkHost,
    Ports,
    endpoint_parameters,
    network_registry,
)
from statemachines.testing import ManualClock
from tests.factories import make_engine


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return open_store(str(tmp_path / "net.db"), ledgers=NETWORK_LEDGERS)


def _run(store: SqlStore, host: NetworkHost, **overrides: object) -> str:
    clock = ManualClock()
    engine = make_engine(store, {NETWORK_AGENT: host}, registry=network_registry(), clock=clock)
    parameters = {**endpoint_parameters("web", "web.example.org", "sw1/ge-0/1"), **overrides}
    root = engine.submit("ProvisionEndpoint", parameters)
    engine.run_until_idle()
    return root


def _bookkeeping(store: SqlStore) -> tuple[list[str], list[str], list[str]]:
    return ([a.address for a in AddressPool.read_all(store.engine)],
            [r.name for r in DnsRecords.read_all(store.engine)],
            [p.port for p in Ports.read_all(store.engine)])


def test_an_endpoint_is_provisioned(store: SqlStore) -> None:
    host = NetworkHost()
    root = _run(store, host)
    record = store.command(root)
    assert record is not None and record.status == CommandStatus.ENDED_SUCCESS
    assert host.records == {"web.example.org": "10.0.0.1"}
    assert host.ports == {"sw1/ge-0/1": "100"}
    assert _bookkeeping(store) == (["10.0.0.1"], ["web.example.org"], ["sw1/ge-0/1"])


@pytest.mark.parametrize("refused", ["web.example.org", "sw1/ge-0/1"])
def test_one_step_failing_undoes_the_others_by_their_opposite_commands(
    store: SqlStore, refused: str,
) -> None:
    host = NetworkHost(refuse={refused})
    root = _run(store, host)
    commands, _ = store.tree(root)
    record = next(c for c in commands if c.id == root)
    assert record.status == CommandStatus.ENDED_FAILURE
    opposites = {c.type: c for c in commands
                 if c.execution_reason == ExecutionReason.ROLLBACK_FLOW}
    assert {"ReleaseAddress", "DeleteDnsRecord", "UnplugPort"} >= set(opposites)
    assert all(c.outcome == Outcome.REVERTED for c in opposites.values())
    assert "ReleaseAddress" in opposites
    assert host.records == {} and host.ports == {}
    assert _bookkeeping(store) == ([], [], [])


def test_the_switch_reverts_a_plug_natively_by_its_task_id(store: SqlStore) -> None:
    host = NetworkHost(refuse={"web.example.org"})
    root = _run(store, host)
    _, tasks = store.tree(root)
    plug = next(t for t in tasks if t.verb == "plug_port")
    revert = next(t for t in tasks if t.verb == "revert_task")
    assert revert.parameters["task"] == plug.id
    assert host.ports == {} and host.changes == {}


def test_a_second_endpoint_gets_the_next_free_address(store: SqlStore) -> None:
    host = NetworkHost()
    _run(store, host)
    _run(store, host, hostname="api.example.org", port="sw1/ge-0/2")
    assert sorted(host.records.values()) == ["10.0.0.1", "10.0.0.2"]


def test_an_exhausted_pool_fails_the_root_and_leaves_nothing(store: SqlStore) -> None:
    host = NetworkHost()
    _run(store, host, pool="10.0.0.0/30")  # two hosts: .1 and .2
    _run(store, host, hostname="b.example.org", port="sw1/ge-0/2", pool="10.0.0.0/30")
    third = _run(store, host, hostname="c.example.org", port="sw1/ge-0/3", pool="10.0.0.0/30")
    record = store.command(third)
    assert record is not None and record.status == CommandStatus.ENDED_FAILURE
    assert record.error is not None and "no free address left" in record.error
    assert "c.example.org" not in host.records
