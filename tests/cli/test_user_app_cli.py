"""A user's own application through the command line alone, as separate processes.

The tenant onboarding of tests/tenant (its own commands, agents and ledgers) is submitted, run by a
worker and waited for; the network example is run by two workers on PostgreSQL. The end state is
judged from the database, not from what the commands printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from persistence import SqlStore, connect, open_store
from statemachines import CommandStatus, Outcome, submit_roots
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.network import (
    NETWORK_LEDGERS,
    DnsRecords,
    Leases,
    Ports,
    endpoint_parameters,
    network_registry,
)
from statemachines.example.network.ledgers import metadata as network_metadata
from tests.conftest import POSTGRES_ENV, drop_endaction_tables
from tests.tenant import TENANT_LEDGERS, tenant_parameters
from tests.worlds import terminal_arrivals

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TENANT = "tests.tenant.app:app"
NETWORK = "statemachines.example.network:app"


def endaction(*args: str, cwd: Path = ROOT, stdin: str | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The command as its own process, from the project's folder.

    From there `tests.tenant` imports, as a user's package next to their shell does.
    """
    return subprocess.run([sys.executable, "-m", "statemachines.cli", *args], cwd=cwd,
                          input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)


class Fleet:
    """Worker processes, their logs kept in files; all stopped with SIGTERM at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[str]] = {}
        self._files: list[IO[str]] = []

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self._files.append(log)
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", "statemachines.cli", "worker", "--name", name,
             "--interval", "0.1", "--summary-interval", "1", *args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def stop(self) -> dict[str, int]:
        codes = {}
        for process in self.running.values():
            process.send_signal(signal.SIGTERM)
        for name, process in self.running.items():
            try:
                codes[name] = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError(f"worker {name} ignored SIGTERM: "
                                     f"{self.log(name)[-2000:]}") from None
        self.running.clear()
        for log in self._files:
            log.close()
        return codes


def _wait_for_ends(store: SqlStore, roots: list[str], fleet: Fleet, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ended = sum(store.command(r).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
                    for r in roots)
        if ended == len(roots):
            return
        for name, process in fleet.running.items():
            assert process.poll() is None, f"worker {name} died: {fleet.log(name)[-2000:]}"
        time.sleep(0.3)
    logs = {name: fleet.log(name)[-1500:] for name in fleet.running}
    raise AssertionError(f"roots did not all end within {within} s: {logs}")


def _stopped_line(log: str) -> tuple[int, int]:
    """(roots ended, failed) from a worker's last line."""
    found = re.findall(r"stopped: \d+ committed tick\(s\), (\d+) root\(s\) ended "
                       r"\((\d+) failed\)", log)
    assert found, log[-2000:]
    return int(found[-1][0]), int(found[-1][1])


def _ends_once(store: SqlStore, roots: list[str]) -> list[str]:
    problems = []
    for root in roots:
        arrivals = terminal_arrivals(store, root)
        commands, _ = store.tree(root)
        problems += [f"{c.type} {c.id} of {root} ended {arrivals[c.id]} times"
                     for c in commands if arrivals[c.id] != 1]
    return problems


def test_a_users_own_application_runs_through_the_cli_alone(tmp_path: Path) -> None:
    db = str(tmp_path / "tenants.db")
    roots = []
    for tenant in ("acme", "globex", "initech"):
        ran = endaction("submit", "OnboardTenant", "--app", TENANT, "--db", db, "--key",
                        f"onboard-{tenant}", "--params", "-",
                        stdin=json.dumps(tenant_parameters(tenant)))
        assert ran.returncode == 0, ran.stderr
        roots.append(ran.stdout.strip())
    fleet = Fleet(tmp_path)
    # The worker's certificate authority refuses globex every time (after its retries, that
    # onboarding is undone) and is busy once for someone (a retry gets past it).
    fleet.start("w1", "--app", TENANT, "--db", db, "--agent-option", "refuse-tenants=globex",
                "--agent-option", "fail=issue_certificate:CA busy")
    try:
        waited = [endaction("status", root, "--app", TENANT, "--db", db, "--wait",
                            "--timeout", "90", "--json") for root in roots]
    finally:
        codes = fleet.stop()
    assert codes == {"w1": 0}, fleet.log("w1")
    assert sorted(w.returncode for w in waited) == [0, 0, 5], [w.stderr for w in waited]
    store = open_store(db, create=False, ledgers=TENANT_LEDGERS)
    try:
        ends = sorted((store.command(r).status, store.command(r).outcome)  # type: ignore[union-attr]
                      for r in roots)
        assert ends == sorted([(CommandStatus.ENDED_SUCCESS, Outcome.SUCCEEDED)] * 2
                              + [(CommandStatus.ENDED_FAILURE, Outcome.ROLLED_BACK)])
        failed = store.command(roots[1])  # globex
        assert failed is not None and failed.status == CommandStatus.ENDED_FAILURE
        assert "the CA refuses tenant globex" in (failed.error or "")
        assert _ends_once(store, roots) == []
        assert all(r.state == "reverted" for r in store.reverts())
        assert not store.leases()
    finally:
        store.dispose()
    log = fleet.log("w1")
    assert "of application 'tenant'" in log
    assert "3 root(s) ended (1 failed)" in log  # the summary line a quiet worker logs
    listed = endaction("list", "--app", TENANT, "--db", db, "--json")
    assert sorted(r["id"] for r in json.loads(listed.stdout)["roots"]) == sorted(roots)
    again = endaction("submit", "OnboardTenant", "--app", TENANT, "--db", db, "--key",
                      "onboard-acme", "--params", json.dumps(tenant_parameters("acme")))
    assert again.returncode == 0 and again.stdout.strip() == roots[0]


@pytest.mark.postgres
def test_two_workers_run_200_network_roots_on_postgres(tmp_path: Path) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    engine = connect(url)
    drop_endaction_tables(engine)
    with engine.begin() as conn:
        network_metadata.drop_all(conn)
    engine.dispose()
    store = open_store(url, ledgers=NETWORK_LEDGERS)
    fleet = Fleet(tmp_path)
    try:
        # A quarter of the endpoints sit on switch sw9, which is down on every worker.
        requests = [("ProvisionEndpoint", endpoint_parameters(
            f"svc{i}", f"svc{i}.example.org", f"{'sw9' if i % 4 == 0 else 'sw1'}/ge-0/{i}",
            pool="10.0.0.0/20")) for i in range(200)]
        roots = [r.id for r in submit_roots(store, network_registry(), requests)]
        for name in ("w1", "w2"):
            fleet.start(name, "--app", NETWORK, "--db", url, "--agent-option",
                        "down-switches=sw9", "--max-roots", "40")
        _wait_for_ends(store, roots, fleet, within=240)
        codes = fleet.stop()
        assert codes == {"w1": 0, "w2": 0}
        records = {r: store.command(r) for r in roots}
        succeeded = {r for r, c in records.items() if c is not None
                     and (c.status, c.outcome) == (CommandStatus.ENDED_SUCCESS,
                                                   Outcome.SUCCEEDED)}
        failed = {r for r, c in records.items() if c is not None
                  and c.status == CommandStatus.ENDED_FAILURE}
        assert (len(succeeded), len(failed)) == (150, 50)
        assert all("switch sw9 is down" in (records[r].error or "")  # type: ignore[union-attr]
                   for r in failed)
        assert _ends_once(store, roots) == []
        # Nothing left behind: the ledgers hold the successful endpoints' pieces only.
        for ledger in (Leases, DnsRecords, Ports):
            owners = sorted(row.root_id for row in ledger.read_all(store.engine))
            assert owners == sorted(succeeded), ledger.__name__
        assert not store.leases()
        # Each root's end was counted by the one worker that ended it, and both worked.
        ended = {n: _stopped_line(fleet.log(n)) for n in ("w1", "w2")}
        assert sum(e for e, _ in ended.values()) == 200, ended
        assert sum(f for _, f in ended.values()) == 50, ended
        assert all(e > 0 for e, _ in ended.values()), ended
    finally:
        if fleet.running:
            fleet.stop()
        store.dispose()
        # The shared test database must hold endaction's tables only, for the tests after.
        engine = connect(url)
        drop_endaction_tables(engine)
        with engine.begin() as conn:
            network_metadata.drop_all(conn)
        engine.dispose()
