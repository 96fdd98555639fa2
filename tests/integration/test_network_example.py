"""The second domain, end to end: provision an endpoint, or undo every piece of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence import SqlStore, open_store
from statemachines import CommandStatus, ExecutionReason, Outcome
from statemachines.example.network import (
    NETWORK_AGENT,
    NETWORK_LEDGERS,
    DnsRecords,
    Leases,
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
    return ([f"{a.lease}={a.address}" for a in Leases.read_all(store.engine)],
            [r.name for r in DnsRecords.read_all(store.engine)],
            [p.port for p in Ports.read_all(store.engine)])


def test_an_endpoint_is_provisioned_in_three_ordered_steps(store: SqlStore) -> None:
    host = NetworkHost()
    root = _run(store, host)
    record = store.command(root)
    assert record is not None
    assert (record.status, record.step, dict(record.output)) == (
        CommandStatus.ENDED_SUCCESS, 4, {"address": "10.0.0.1"})
    assert host.leases == {"web": "10.0.0.1"}
    assert host.records == {"web.example.org": "10.0.0.1"}  # the address the pool chose
    assert host.ports == {"sw1/ge-0/1": "100"}
    assert _bookkeeping(store) == (["web=10.0.0.1"], ["web.example.org"], ["sw1/ge-0/1"])
    _, tasks = store.tree(root)
    assert [(t.step, t.verb) for t in sorted(tasks, key=lambda t: t.created_at)] == [
        (1, "allocate_address"), (2, "create_dns_record"), (3, "plug_port")]


def test_a_failure_in_the_last_step_undoes_the_first_two_and_the_root_names_it(
        store: SqlStore) -> None:
    host = NetworkHost(refuse={"sw1/ge-0/1"})
    root = _run(store, host)
    commands, _ = store.tree(root)
    record = next(c for c in commands if c.id == root)
    assert (record.status, record.outcome) == (CommandStatus.ENDED_FAILURE, Outcome.FAILED)
    assert record.error == "plug_port failed on agent 'network': sw1/ge-0/1 refused"
    opposites = sorted((c.created_at, c.type, c.outcome) for c in commands
                       if c.execution_reason == ExecutionReason.ROLLBACK_FLOW)
    # Last made first: the port (its plug may have acted before it failed: the switch's
    # revert of it changes nothing if it did not), then the record, then the lease.
    assert [(t, o) for _, t, o in opposites] == [("UnplugPort", Outcome.REVERTED),
                                                 ("DeleteDnsRecord", Outcome.REVERTED),
                                                 ("ReleaseAddress", Outcome.REVERTED)]
    assert host.leases == {} and host.records == {} and host.ports == {}
    assert _bookkeeping(store) == ([], [], [])


@pytest.mark.parametrize("refused", ["web", "web.example.org"])
def test_a_failure_in_an_earlier_step_takes_no_further_step(store: SqlStore,
                                                            refused: str) -> None:
    host = NetworkHost(refuse={refused})
    root = _run(store, host)
    record = store.command(root)
    assert record is not None and record.status == CommandStatus.ENDED_FAILURE
    _, tasks = store.tree(root)
    assert "plug_port" not in {t.verb for t in tasks}
    assert host.leases == {} and host.records == {} and host.ports == {}
    assert _bookkeeping(store) == ([], [], [])


def test_the_switch_reverts_a_plug_natively_by_its_task_id(store: SqlStore) -> None:
    """Every step succeeded, then the endpoint's own bookkeeping failed: all three are reverted.

    The plug is reverted by the switch's own revert of the plugging task, and the endpoint reads so.
    """
    from statemachines import CommandContext, CommandRegistry
    from statemachines.example.network import NETWORK_COMMANDS, ProvisionEndpoint

    class Unlucky(ProvisionEndpoint):
        def end_successfully(self, ctx: CommandContext) -> None:
            raise RuntimeError("the inventory service is down")

    registry = CommandRegistry([c for c in NETWORK_COMMANDS if c is not ProvisionEndpoint]
                               + [Unlucky])
    host = NetworkHost()
    clock = ManualClock()
    engine = make_engine(store, {NETWORK_AGENT: host}, registry=registry, clock=clock)
    root = engine.submit("ProvisionEndpoint",
                         endpoint_parameters("web", "web.example.org", "sw1/ge-0/1"))
    engine.run_until_idle()
    commands, tasks = store.tree(root)
    plug = next(t for t in tasks if t.verb == "plug_port")
    revert = next(t for t in tasks if t.verb == "revert_task")
    assert revert.parameters["task"] == plug.id
    assert host.ports == {} and host.changes == {} and host.leases == {} and host.records == {}
    undone = [c.type for c in sorted(commands, key=lambda c: c.created_at)
              if c.execution_reason == ExecutionReason.ROLLBACK_FLOW]
    assert undone == ["UnplugPort", "DeleteDnsRecord", "ReleaseAddress"]  # last made first
    compensations = [h.detail or "" for h in store.history(root) if h.trigger == "compensate"]
    assert ["(native revert)" in d for d in compensations] == [True, False, False]
    record = next(c for c in commands if c.id == root)
    assert (record.outcome, record.own_work_succeeded) == (Outcome.FAILED, True)
    assert _bookkeeping(store) == ([], [], [])


def test_a_second_endpoint_gets_the_next_free_address(store: SqlStore) -> None:
    host = NetworkHost()
    _run(store, host)
    _run(store, host, service="api", hostname="api.example.org", port="sw1/ge-0/2")
    assert sorted(host.records.values()) == ["10.0.0.1", "10.0.0.2"]


def test_an_exhausted_pool_fails_the_root_and_leaves_nothing(store: SqlStore) -> None:
    host = NetworkHost()
    _run(store, host, pool="10.0.0.0/30")  # two hosts: .1 and .2
    _run(store, host, service="b", hostname="b.example.org", port="sw1/ge-0/2",
         pool="10.0.0.0/30")
    third = _run(store, host, service="c", hostname="c.example.org", port="sw1/ge-0/3",
                 pool="10.0.0.0/30")
    record = store.command(third)
    assert record is not None and record.status == CommandStatus.ENDED_FAILURE
    assert record.error == ("allocate_address failed on agent 'network': no free address left "
                            "in 10.0.0.0/30")
    assert "c.example.org" not in host.records and "c" not in host.leases
