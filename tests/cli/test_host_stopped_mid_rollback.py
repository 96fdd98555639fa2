"""Issue 23, item 4: the storage host stopped (SIGSTOP) in the middle of a rollback.

A worker process runs two roots through `endaction agent serve`. Root A's second copy fails,
so its images are being removed, while root B's slow copies (submitted once A's are on the
host) hold the host's one copy slot, so A's deletes wait on the host. That is when the host
is frozen: its process answers nothing, but the kernel still accepts connections for it, so
every call the engine makes waits out its whole timeout.

- Frozen for longer than one call's whole budget (the HTTP timeout times its tries) and far
  past the worker's lease TTL, then thawed: the worker neither hangs nor dies, says in a few
  lines that the host did not answer, and after SIGCONT both roots end; nothing is left on
  disk or in the inventory, every command ended once, no lease is held.
- Frozen until the engine gives up (the VM application with bounds of seconds): the worker
  gives up within those bounds, however many calls were due, says for each image, in one line,
  that it could not be reverted and why, and records every image it could not undo
  `revert_failed`; it stops at once on SIGTERM though the host is still frozen. After SIGCONT,
  `endaction cleanup` leaves nothing behind.

Judged from the database, the storage directory and the worker's log, as the other chaos
tests are.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from persistence import SqlStore
from statemachines import (
    Agent,
    AgentSettings,
    App,
    Limits,
    RevertPolicy,
    RevertState,
    submit_root,
)
from statemachines.core.machines.command_machine import TERMINAL_COMMAND_STATES
from statemachines.example.vm import STORAGE_AGENT, ImageInventory, add_vm_parameters, vm_registry
from statemachines.example.vm.demo_report import vm_leftovers, vm_report
from statemachines.example.vm.host_token import read_token
from statemachines.example.vm.remote_storage import RemoteStorage
from tests.cli.fleet import ends_once
from tests.cli.hosts import Host
from tests.cli.judge import judge
from tests.worlds import images_in, vm_store

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "statemachines.cli"]
TEMPLATE = "template-disk0"
# The client's defaults (statemachines/http/client.py): 10 s per request, 3 tries, 0.2 s and
# 0.4 s apart. A frozen host accepts connections, so each try waits out its timeout.
CALL_BUDGET = 3 * 10.0 + 0.2 + 0.4
LEASE_TTL = 3.0


def _quick_agents(settings: AgentSettings) -> Mapping[str, Agent]:
    """The VM example's remote storage, with a client that gives up on a silent host sooner.

    It gives up after two tries of one second each instead of three of ten.
    """
    assert settings.url is not None and settings.token_file is not None
    host = RemoteStorage(settings.url, read_token(settings.token_file), timeout=1.0,
                         retries=1, backoff=0.1)
    return {STORAGE_AGENT: host}


QUICK_CALL_BUDGET = 2 * 1.0 + 0.1
#: The VM application with bounds of seconds: every retry budget (polls, starts, clears,
#: lost and failed compensations) runs out within a minute of the host freezing. It keeps the
#: name "vm": it is the same application, configured for a host expected to answer fast.
QUICK_APP = App(
    name="vm",
    registry=vm_registry(),
    agents=_quick_agents,
    ledgers=(ImageInventory,),
    limits=Limits(max_start_attempts=2, max_clear_attempts=2, max_poll_failures=3,
                  agent_retry_seconds=0.1, max_agent_retry_seconds=0.5, task_timeout=600),
    policy=RevertPolicy(max_attempts=2, max_lost_attempts=1, backoff_seconds=0.1),
    leftovers=vm_leftovers,
    report=vm_report,
)


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def _submit(db: Path, vm: str, disks: int, fail: tuple[int, ...] = ()) -> str:
    params = json.dumps(add_vm_parameters(vm, [TEMPLATE] * disks, fail))
    done = _cli("submit", "AddVmFromTemplate", "--params", params, "--db", str(db))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _rolling_back(store: SqlStore, root: str) -> bool:
    """The root's rollback is under way.

    Its RemoveImage commands run, and their deletes are on the host, not yet done.
    """
    commands, tasks = store.tree(root)
    deletes = [t for t in tasks if t.verb == "delete_image"]
    return (any(c.type == "RemoveImage" for c in commands) and bool(deletes)
            and all(t.status == "polling" for t in deletes))


def _all_ended(store: SqlStore, roots: list[str]) -> bool:
    return all(store.command(r).status in TERMINAL_COMMAND_STATES  # type: ignore[union-attr]
               for r in roots)


class Fleet:
    """One host process and one worker process on a SQLite file, the worker's log kept."""

    def __init__(self, tmp: Path, *worker_args: str) -> None:
        self.storage = tmp / "storage"
        self.db = tmp / "e.db"
        self.log_path = tmp / "worker.log"
        # One copy or delete at a time, 4 s per 2 MiB copy: A's copies take 6 s (the failing
        # one stops half-way), time enough for B's to queue behind them; B's then hold A's
        # deletes for 12 s.
        self.host = Host(self.storage, "--workers", "1", "--seconds-per-mib", "2")
        self.worker_args = worker_args
        self.worker: subprocess.Popen[str] | None = None
        self.store: SqlStore | None = None
        self._log: IO[str] | None = None
        self.frozen = False

    def start(self) -> tuple[SqlStore, str, str]:
        """Start the host and the worker, and submit the roots A and B.

        A copy of A fails, so A rolls back. Once A's copies are on the host, B is submitted, from
        here (a process would start too slowly).
        """
        self.host.start()
        with self.host.client() as http:
            assert http.put(f"/v1/storage/templates/{TEMPLATE}",
                            json={"size": 2 << 20}).status_code == 200
        a = _submit(self.db, "vm-a", 2, fail=(1,))
        store = self.store = vm_store(str(self.db), create=False)
        self._log = self.log_path.open("w")
        self.worker = subprocess.Popen(
            [*CLI, "worker", "--db", str(self.db), "--agent-url", self.host.url,
             "--agent-token-file", str(self.host.token_file), "--name", "w1",
             "--interval", "0.2", "--lease-ttl", str(LEASE_TTL), *self.worker_args],
            stdout=self._log, stderr=subprocess.STDOUT, text=True)

        def copying() -> bool:
            copies = [t for t in store.tree(a)[1] if t.verb == "copy_image"]
            return len(copies) == 2 and all(t.status == "polling" for t in copies)

        _until("A's copies", copying, 30, self)
        b = submit_root(store, vm_registry(), "AddVmFromTemplate",
                        add_vm_parameters("vm-b", [TEMPLATE] * 3)).id
        return store, a, b

    def freeze(self) -> None:
        assert self.host.process is not None
        self.host.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.host.process is not None
        self.host.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def log(self) -> str:
        return self.log_path.read_text()

    def worker_alive(self) -> None:
        assert self.worker is not None
        assert self.worker.poll() is None, f"the worker died: {self.log()[-3000:]}"

    def stop_worker(self, within: float) -> tuple[int, float]:
        """SIGTERM the worker: its exit status, and how long it took to stop."""
        assert self.worker is not None
        began = time.monotonic()
        self.worker.send_signal(signal.SIGTERM)
        try:
            code = self.worker.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            raise AssertionError(f"the worker did not stop within {within:.0f} s of SIGTERM: "
                                 f"{self.log()[-3000:]}") from None
        return code, time.monotonic() - began

    def close(self) -> None:
        if self.frozen:
            self.thaw()
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait()
        self.host.stop()
        if self.store is not None:
            self.store.dispose()
        if self._log is not None:
            self._log.close()


@contextmanager
def _fleet(tmp: Path, *worker_args: str) -> Iterator[Fleet]:
    fleet = Fleet(tmp, *worker_args)
    try:
        yield fleet
    finally:
        fleet.close()


def _until(what: str, ready: Callable[[], bool], seconds: float, fleet: Fleet) -> float:
    """Wait, bounded, for `ready()` while the worker lives; returns the seconds it took."""
    began = time.monotonic()
    while not ready():
        fleet.worker_alive()
        if time.monotonic() - began > seconds:
            raise AssertionError(f"{what} did not happen within {seconds:.0f} s: "
                                 f"{fleet.log()[-3000:]}")
        time.sleep(0.05)
    return time.monotonic() - began


def _naming(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if text in line]


def test_a_host_frozen_mid_rollback_then_thawed_ends_clean(tmp_path: Path) -> None:
    with _fleet(tmp_path) as fleet:
        store, a, b = fleet.start()
        _until("A's rollback", lambda: _rolling_back(store, a), 30, fleet)
        fleet.freeze()
        # Past one call's whole budget, so that the failure reaches the engine, and far past
        # the lease TTL: the worker waits in that call meanwhile.
        time.sleep(CALL_BUDGET + 5)
        fleet.worker_alive()
        while_frozen = fleet.log()
        fleet.thaw()
        took = _until("both roots' end", lambda: _all_ended(store, [a, b]), 40, fleet)
        code, _ = fleet.stop_worker(within=30)
        log = fleet.log()
        statuses = {r: store.command(r).status for r in (a, b)}  # type: ignore[union-attr]
        reverts = {r.resource.id: r.state for r in store.reverts()}
        problems = judge(store, fleet.storage) + ends_once(store)
    host_lines = _naming(log, fleet.host.url)
    print(f"roots ended {took:.1f} s after SIGCONT; {len(host_lines)} log line(s) name the "
          "host:", *host_lines, sep="\n  ")
    assert code == 0, log[-3000:]
    assert statuses == {a: "ended_failure", b: "ended_success"}, statuses
    assert reverts == {"vm-a-disk0": RevertState.REVERTED,
                       "vm-a-disk1": RevertState.REVERTED}, reverts
    # While frozen the worker said why it waited: the host, and that it did not answer.
    assert [line for line in _naming(while_frozen, fleet.host.url)
            if "ERROR" in line and "did not answer" in line], while_frozen[-3000:]
    # A few lines for a freeze of about forty seconds: one per retry, one per failed call.
    assert len(host_lines) <= 8, "\n".join(host_lines)
    assert "Traceback" not in log, log[-3000:]
    assert problems == [], problems


def test_a_host_frozen_until_the_engine_gives_up_leaves_a_record_for_cleanup(
        tmp_path: Path) -> None:
    with _fleet(tmp_path, "--app", f"{__name__}:QUICK_APP") as fleet:
        store, a, b = fleet.start()
        _until("A's rollback", lambda: _rolling_back(store, a), 30, fleet)
        fleet.freeze()
        # Each root's budgets (3 polls, then 2 compensations of 2 starts each, a second
        # apart at most) take about a dozen ticks of one silent call each: ~20 s. A tick
        # that asked the silent host once per due call took a minute and more.
        took = _until("the worker giving up", lambda: _all_ended(store, [a, b]), 45, fleet)
        code, stopping = fleet.stop_worker(within=30)  # the host is still frozen
        log = fleet.log()
        statuses = {r: store.command(r).status for r in (a, b)}  # type: ignore[union-attr]
        reverts = {r.resource.id: r for r in store.reverts()}
        not_undone = ({row.id for row in images_in(store)}
                      | {p.stem for p in (fleet.storage / "images").glob("*.img")})
        fleet.thaw()
        cleaned = _cli("cleanup", "--db", str(fleet.db), "--agent-url", fleet.host.url,
                       "--agent-token-file", str(fleet.host.token_file), "--json",
                       timeout=120)
        problems = judge(store, fleet.storage) + ends_once(store)
    host_lines = _naming(log, fleet.host.url)
    given_up = {name: _naming(log, f"image:{name} could not be reverted") for name in reverts}
    print(f"the worker gave up {took:.1f} s after the host froze and stopped {stopping:.1f} s "
          f"after SIGTERM; {len(host_lines)} log line(s) name the host; given up:",
          *[line for lines in given_up.values() for line in lines], sep="\n  ")
    assert code == 0, log[-3000:]
    assert stopping < 2 * QUICK_CALL_BUDGET + 5, "SIGTERM waited on the frozen host"
    assert statuses[a] == "rollback_failed", statuses
    assert statuses[b] in ("rollback_failed", "ended_failure"), statuses
    # Nothing was silently lost: every image still on disk or in the inventory is recorded
    # revert_failed, the host's silence as the reason, and said once, in one line.
    assert not_undone and not_undone <= set(reverts), (not_undone, reverts)
    for name in not_undone:
        assert reverts[name].state == RevertState.REVERT_FAILED, reverts[name]
        assert "did not answer" in (reverts[name].last_error or ""), reverts[name]
        assert len(given_up[name]) == 1 and "did not answer" in given_up[name][0], given_up
    # Bounded: at most a retry, a failure and a summary per tick, over a dozen-odd ticks.
    assert len(host_lines) <= 60, "\n".join(host_lines[-60:])
    assert "Traceback" not in log, log[-3000:]
    assert cleaned.returncode == 0, cleaned.stdout[-3000:] + cleaned.stderr[-3000:]
    report = json.loads(cleaned.stdout)
    assert report["still_failed"] == [] and report["leftovers"] == [], report
    assert {row["resource"] for row in report["retried"]} == {
        f"image:{name}" for name, r in reverts.items() if r.state == RevertState.REVERT_FAILED}
    assert problems == [], problems
