"""`endaction worker`, `submit` and `status --wait`: their contracts on bad input, in-process.

The multi-process runs are in test_workers_kill.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import endaction
from tests.http_hosts import free_port
from tests.worlds import vm_store

GOOD = json.dumps({"vm": "vm1", "disks": [{"source": "template-disk0"}]})


@pytest.mark.parametrize(("params", "said"), [
    ("{not json", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("[" * 100_000, "nested too deeply"),
    (json.dumps({"vm": "vm1"}), "disks"),
    (json.dumps({"vm": "a\u0000b", "disks": [{"source": "t"}]}), "'vm' must be a name"),
])
def test_submit_refuses_bad_parameters_by_name(tmp_path: Path, params: str, said: str) -> None:
    ran = endaction("submit", "AddVmFromTemplate", "--params", params,
                    "--db", str(tmp_path / "e.db"))
    assert ran.returncode == 2, ran
    assert said in ran.stderr and "Traceback" not in ran.stderr


def test_submit_refuses_an_unknown_type_and_prints_only_the_id_otherwise(
        tmp_path: Path) -> None:
    db = str(tmp_path / "e.db")
    unknown = endaction("submit", "ResizeVm", "--params", "{}", "--db", db)
    assert unknown.returncode == 2 and "ResizeVm" in unknown.stderr
    ran = endaction("submit", "AddVmFromTemplate", "--params", GOOD, "--db", db)
    assert ran.returncode == 0 and len(ran.stdout.strip()) == 32
    store = vm_store(db)
    try:
        assert store.root_ids() == [ran.stdout.strip()]
        assert store.leases()[0][1] is None, "a submitted root is free for any worker"
    finally:
        store.dispose()


@pytest.mark.parametrize("args", [
    ["--task-timeout", "nan"], ["--interval", "nan"], ["--lease-ttl", "inf"], ["--name", ""],
    ["--name", "a\nb"], ["--name", "x" * 300],
])
def test_worker_refuses_bad_options(tmp_path: Path, args: list[str]) -> None:
    ran = endaction("worker", "--db", str(tmp_path / "e.db"), "--storage",
                    str(tmp_path / "s"), *args)
    assert ran.returncode == 2, ran
    assert "Traceback" not in ran.stderr


def test_status_wait_is_bounded_and_says_why_it_stopped(tmp_path: Path) -> None:
    db = str(tmp_path / "e.db")
    root = endaction("submit", "AddVmFromTemplate", "--params", GOOD, "--db", db).stdout.strip()
    assert endaction("status", root, "--wait", "--timeout", "nan", "--db", db).returncode == 2
    timed_out = endaction("status", root, "--wait", "--timeout", "0.3", "--db", db)
    assert timed_out.returncode == 4 and "still not_started" in timed_out.stderr
    store = vm_store(db)
    try:
        with store.transaction() as tx:
            tx.hold_root(root, 0.0, "the engine failed on it: boom")
    finally:
        store.dispose()
    held = endaction("status", root, "--wait", "--timeout", "60", "--db", db)
    assert held.returncode == 3 and "is held" in held.stderr and "boom" in held.stderr


def test_a_worker_that_cannot_reach_its_database_gives_up_after_its_start_timeout(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The start is retried, but bounded, and says so each time.

    A restart during a failover must not exit at the first cut; the error says how long it tried and
    how to wait longer.
    """
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    ran = endaction("worker", "--db", url, "--storage", str(tmp_path / "s"),
                    "--start-timeout", "1")
    assert ran.returncode == 1, ran
    assert "Error: database" in ran.stderr and "retried for" in ran.stderr
    assert "--start-timeout waits longer" in ran.stderr
    assert caplog.text.count("unavailable at start") >= 2  # it said so at every retry
    assert "Traceback" not in ran.stderr
