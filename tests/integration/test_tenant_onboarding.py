"""The tenant onboarding domain (tests/tenant), against SQLite files and PostgreSQL.

It covers steps in order, outputs passed along, retries before rollback, causes that reach the root,
several resources per command, each reverted last made first; crashes included.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistence import connect, open_store
from statemachines import (
    CommandStatus,
    Engine,
    Outcome,
    RevertState,
    TaskStatus,
    TickReport,
)
from statemachines.testing import ManualClock
from tests.conftest import POSTGRES_ENV, drop_endaction_tables
from tests.tenant import TENANT_LEDGERS, TenantHosts, tenant_parameters, tenant_registry
from tests.tenant.ledgers import metadata as tenant_metadata


class Died(BaseException):
    """The engine's process is gone."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield str(tmp_path / "tenants.db")
        return
    import os

    found = os.environ.get(POSTGRES_ENV)
    if not found:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    def empty() -> None:
        engine = connect(found)
        drop_endaction_tables(engine)
        with engine.begin() as conn:
            tenant_metadata.drop_all(conn)
        engine.dispose()

    empty()
    yield found
    empty()  # the database is shared: leave none of this test's tables in it


class Run:
    """A store of the tenant domain, its hosts, and engines over them on one manual clock."""

    def __init__(self, url: str, hosts: TenantHosts | None = None) -> None:
        self.url = url
        self.hosts = hosts or TenantHosts()
        self.agents = self.hosts.agents()
        self.clock = ManualClock()
        self.ids = itertools.count(1)
        self.store = open_store(url, ledgers=TENANT_LEDGERS)

    def engine(self, on_commit: Callable[[TickReport], None] | None = None) -> Engine:
        return Engine(self.store, self.agents, tenant_registry(), clock=self.clock,
                      sleep=self.clock.sleep, on_commit=on_commit,
                      ids=lambda: f"{next(self.ids):032x}")

    def restart(self) -> None:
        self.store.dispose()
        self.store = open_store(self.url, ledgers=TENANT_LEDGERS)

    def ledger_rows(self) -> list[str]:
        return sorted(f"{ledger.resource_type}:{row.name}" for ledger in TENANT_LEDGERS
                      for row in ledger.read_all(self.store.engine))

    def by_type(self, root: str) -> dict[str, Any]:
        commands, _ = self.store.tree(root)
        return {c.type: c for c in commands}

    def close(self) -> None:
        self.store.dispose()


def test_the_steps_run_in_order_and_pass_what_each_made_to_the_next(url: str) -> None:
    run = Run(url)
    try:
        root = run.engine().submit("OnboardTenant", tenant_parameters("acme"))
        run.engine().run_until_idle()
        commands, tasks = run.store.tree(root)
        top = next(c for c in commands if c.id == root)
        assert (top.status, top.outcome, top.error) == (CommandStatus.ENDED_SUCCESS,
                                                        Outcome.SUCCEEDED, None)
        # The database before its schemas and its user, both before the certificate: the
        # services would have refused anything else.
        started = [verb for _, verb in sorted(
            (t.created_at, t.verb) for t in tasks)]
        assert started.index("create_database") < started.index("create_schema")
        assert started.index("create_user") < started.index("issue_certificate")
        # What each step returned reached the next one, and the root.
        certificate = next(t for t in tasks if t.verb == "issue_certificate")
        assert certificate.parameters["bucket_arn"] == "arn:objects:::acme-data"
        assert certificate.parameters["dsn"] == "postgresql://db.internal:5432/acme"
        serial = certificate.output["serial"]
        assert dict(top.output) == {"bucket_arn": "arn:objects:::acme-data",
                                    "dsn": "postgresql://db.internal:5432/acme",
                                    "certificate": serial}
        assert run.hosts.certificates == {serial: "acme.tenants.example"}
        steps = {c.type: c.step for c in commands}
        assert steps == {"OnboardTenant": 3, "CreateBucket": 2, "CreateDatabase": 3,
                         "IssueCertificate": 2}
        # The ledgers keep what the services said: the serial, the connection string.
        details = {(ledger.resource_type, row.name): row.detail for ledger in TENANT_LEDGERS
                   for row in ledger.read_all(run.store.engine)}
        assert details[("certificate", "acme.tenants.example")] == serial
        assert details[("database", "acme")] == "postgresql://db.internal:5432/acme"
        # The root's machine went round its loop: stepping, next_step, executing, twice.
        path = [h.dest for h in run.store.history(root) if h.source != h.dest]
        assert path == ["not_started", "executing", "stepping", "executing", "stepping",
                        "executing", "waiting", "ending", "ended_success"]
    finally:
        run.close()


def test_a_failure_in_the_last_step_leaves_nothing_and_the_root_names_it(url: str) -> None:
    refusal = "the CA is down for maintenance"
    run = Run(url, TenantHosts(fail={"issue_certificate": [refusal] * 3}))
    try:
        root = run.engine().submit("OnboardTenant", tenant_parameters("acme"))
        run.engine().run_until_idle()
        commands = run.by_type(root)
        top = commands["OnboardTenant"]
        assert top.status == CommandStatus.ENDED_FAILURE
        failing = commands["IssueCertificate"]
        cause = f"issue_certificate failed on agent 'pki': {refusal}"
        assert top.error == f"IssueCertificate {failing.id}: {cause}"
        assert (failing.outcome, failing.error, failing.own_work_succeeded) == (
            Outcome.FAILED, cause, False)
        for undone in ("CreateBucket", "CreateDatabase"):
            assert (commands[undone].outcome, commands[undone].error,
                    commands[undone].own_work_succeeded) == (Outcome.ROLLED_BACK, None, True)
        assert top.outcome == Outcome.ROLLED_BACK
        # Nothing is left, on the services or in the ledgers; the database's four resources
        # were undone last made first (the server refuses to drop a database with schemas).
        assert run.hosts.left() == [] and run.ledger_rows() == []
        reverts = {str(r.resource): r.state for r in run.store.reverts()}
        assert set(reverts.values()) == {RevertState.REVERTED}
        assert set(reverts) == {"bucket:acme-data", "database:acme", "schema:acme.app",
                                "schema:acme.audit", "db_user:acme.app",
                                "certificate:acme.tenants.example"}
        # The certificate was tried three times, each attempt a task, each in the history.
        _, tasks = run.store.tree(root)
        attempts = sorted((t.attempt, t.retried, t.status) for t in tasks
                          if t.verb == "issue_certificate")
        assert attempts == [(1, True, TaskStatus.CLEARED), (2, True, TaskStatus.CLEARED),
                            (3, False, TaskStatus.CLEARED)]
        retries = [h.detail for h in run.store.history(failing.id) if h.trigger == "retry"]
        assert len(retries) == 2 and all(refusal in (d or "") for d in retries)
    finally:
        run.close()


def test_a_task_that_fails_twice_then_succeeds_ends_the_root_in_success(url: str) -> None:
    run = Run(url, TenantHosts(fail={"issue_certificate": ["busy", "busy"]}))
    try:
        root = run.engine().submit("OnboardTenant", tenant_parameters("acme"))
        run.engine().run_until_idle()
        top = run.by_type(root)["OnboardTenant"]
        assert (top.status, top.error) == (CommandStatus.ENDED_SUCCESS, None)
        history = run.store.history_of_root(root)
        issued = [h for h in history if h.object_kind == "task" and h.trigger == "create"
                  and (h.detail or "").startswith("issue_certificate")]
        assert [h.detail for h in issued] == [
            f"issue_certificate on pki, attempt {n} of 3" for n in (1, 2, 3)]
        # The back-off: the second attempt started 1 s after the first failed, the third 2 s.
        ids = [h.object_id for h in issued]
        started = [next(h.at for h in history if h.object_id == i and h.trigger == "accepted")
                   for i in ids]
        assert [round(b - a) for a, b in itertools.pairwise(started)] == [1, 2]
        assert len(run.hosts.certificates) == 1 and run.store.reverts() is not None
        assert list(run.store.reverts()) == []
    finally:
        run.close()


def test_a_step_that_raises_fails_its_command_and_rolls_the_tenant_back(url: str) -> None:
    from tests.tenant import commands as tenant_commands

    class Broken(tenant_commands.CreateDatabase):
        def next_step(self, ctx: Any) -> None:
            raise RuntimeError("the schema list is malformed")

    registry = tenant_registry()
    registry._types["CreateDatabase"] = Broken  # the same type name, a broken step
    run = Run(url)
    try:
        engine = Engine(run.store, run.agents, registry, clock=run.clock, sleep=run.clock.sleep)
        root = engine.submit("OnboardTenant", tenant_parameters("acme"))
        engine.run_until_idle()
        commands = run.by_type(root)
        database = commands["CreateDatabase"]
        assert database.outcome == Outcome.FAILED
        assert database.error == ("next_step (step 2) raised RuntimeError: the schema list "
                                  "is malformed")
        assert commands["OnboardTenant"].error == f"CreateDatabase {database.id}: {database.error}"
        assert "IssueCertificate" not in commands  # no step after a failure
        assert run.hosts.left() == [] and run.ledger_rows() == []
    finally:
        run.close()


def _end_state(run: Run, root: str) -> object:
    commands, tasks = run.store.tree(root)
    return (sorted((c.type, c.status, c.outcome or "", c.step) for c in commands),
            sorted((t.verb, t.attempt, t.status) for t in tasks),
            run.hosts.left(), run.ledger_rows(),
            sorted((str(r.resource), r.state) for r in run.store.reverts()))


@pytest.mark.slow
def test_a_crash_after_any_commit_ends_the_same_with_no_attempt_counted_twice(
        tmp_path: Path) -> None:
    """A failing tenant, killed after each of its commits in turn, ends as if it never crashed.

    Its certificate is refused until its third try fails too. Killed after each commit in turn and
    recovered, every run ends as the one that never crashed, attempts included.
    """

    def world(path: Path, crash_after: int | None) -> tuple[object, int]:
        run = Run(str(path), TenantHosts(fail={"issue_certificate": ["down"] * 3}))
        commits = 0

        def counted(report: TickReport) -> None:
            nonlocal commits
            commits += 1
            if commits == crash_after:
                raise Died

        try:
            root = run.engine(counted).submit("OnboardTenant", tenant_parameters("acme"))
            try:
                run.engine(counted).run_until_idle()
            except Died:
                run.restart()
                run.engine().run_until_idle()
            return _end_state(run, root), commits
        finally:
            run.close()

    baseline, commits = world(tmp_path / "baseline.db", None)
    assert commits > 10
    for crash_after in range(1, commits + 1):
        ended, _ = world(tmp_path / f"crash{crash_after}.db", crash_after)
        assert ended == baseline, f"crashed after commit {crash_after}"
