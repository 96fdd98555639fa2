"""The storage host as its own process (`endaction agent serve`), end to end.

The demo talks to it over loopback HTTP: the issue's scenario, judged from the database and the
files.

- a run against the host ends ended_failure with nothing left behind;
- the same run with the host SIGKILLed mid-copy and restarted, then `endaction resume`, ends the
  same way;
- a request without the token is refused;
- the host's journal survives its restarts: a task finished before is reported finished after, one
  that died with the process is run again or (with --max-resumes 0) reported unknown, never success.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.hosts import Host
from tests.cli.judge import judge
from tests.worlds import vm_store

pytestmark = pytest.mark.slow


def _demo(host: Host, db: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "statemachines.cli", "demo", "--images", "8", "--fail", "3",
         "--db", str(db), "--agent-url", host.url, "--agent-token-file",
         str(host.token_file), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _judged(db: Path, storage: Path) -> list[str]:
    store = vm_store(str(db), create=False)
    try:
        return judge(store, storage)
    finally:
        store.dispose()


def test_a_demo_against_the_host_process_ends_clean(tmp_path: Path) -> None:
    host = Host(tmp_path / "storage")
    host.start()
    try:
        demo = _demo(host, tmp_path / "e.db")
        out, err = demo.communicate(timeout=180)
        assert demo.returncode == 5, err[-2000:]
        report = json.loads(out)
        assert report["root"]["status"] == "ended_failure"
        assert report["leftovers"] == [] and report["images_on_disk"] == []
        assert httpx.get(f"{host.url}/v1/health").status_code == 401  # no token
        with host.client() as http:
            assert http.get("/v1/health").json()["protocol"] == 1
    finally:
        host.stop()
    assert _judged(tmp_path / "e.db", tmp_path / "storage") == []
    assert not list((tmp_path / "storage" / "images").glob("*.img"))


def test_the_host_killed_mid_copy_and_restarted_then_resume_ends_the_same(
        tmp_path: Path) -> None:
    host = Host(tmp_path / "storage", "--seconds-per-mib", "0.5")
    host.start()
    try:
        demo = _demo(host, tmp_path / "e.db")
        # Killed once copies are under way (2 MiB each take about a second, four at a time):
        # not after a fixed sleep, which a loaded machine spends importing and writing the
        # templates (CI once killed the host while the demo still made template-disk7).
        images = tmp_path / "storage" / "images"
        deadline = time.monotonic() + 60
        while not list(images.glob("*")):
            assert demo.poll() is None, "the demo ended before any copy started"
            assert time.monotonic() < deadline, "no copy started within 60 s"
            time.sleep(0.05)
        time.sleep(0.3)
        assert demo.poll() is None, "the demo ended before the host was killed"
        host.kill()
        time.sleep(1.0)
        host.start()
        _, err = demo.communicate(timeout=300)
        assert demo.returncode in (3, 5), err[-2000:]
        resumed = subprocess.run(
            [sys.executable, "-m", "statemachines.cli", "resume", "--db",
             str(tmp_path / "e.db"), "--agent-url", host.url, "--agent-token-file",
             str(host.token_file), "--json"],
            capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 5, resumed.stderr[-2000:]
        report = json.loads(resumed.stdout)
        assert report["root"]["status"] == "ended_failure"
        assert report["leftovers"] == []
    finally:
        host.stop()
    assert _judged(tmp_path / "e.db", tmp_path / "storage") == []


def _copy(http: httpx.Client, task_id: str) -> None:
    body = {"verb": "copy_image", "parameters": {"image": f"img-{task_id}", "source": "t0"}}
    assert http.put(f"/v1/tasks/{task_id}", json=body).status_code == 200


def _report(http: httpx.Client, task_id: str) -> dict[str, Any]:
    tasks: dict[str, dict[str, Any]] = http.post("/v1/poll",
                                                 json={"task_ids": [task_id]}).json()["tasks"]
    return tasks.get(task_id, {})


def test_the_journal_survives_the_host_process(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    host = Host(storage, "--seconds-per-mib", "2", "--max-resumes", "0")
    host.start()
    try:
        with host.client() as http:
            assert http.put("/v1/storage/templates/t0", json={"size": 64 << 10}).status_code \
                == 200
            _copy(http, "quick")
            deadline = time.monotonic() + 30
            while _report(http, "quick").get("status") != "finished":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert http.put("/v1/storage/templates/t1", json={"size": 8 << 20}).status_code \
                == 200
            body = {"verb": "copy_image", "parameters": {"image": "img-slow", "source": "t1"}}
            assert http.put("/v1/tasks/slow", json=body).status_code == 200
            time.sleep(1.0)  # 8 MiB at 2 s/MiB: still copying
            assert _report(http, "slow")["status"] == "running"
        host.kill()
        host.start()
        with host.client() as http:
            quick = _report(http, "quick")
            # Its end, and what it returned, survived the host's process.
            assert (quick["status"], quick["result"], quick["message"]) == ("finished",
                                                                           "success", "")
            assert quick["output"]["bytes"] == 64 << 10
            assert len(quick["output"]["sha256"]) == 64
            lost = _report(http, "slow")
            assert lost["status"] == "unknown" and lost["result"] == "unknown", lost
            assert http.delete("/v1/tasks/slow").status_code == 200
            assert http.put("/v1/tasks/slow", json=body).status_code == 200
            assert _report(http, "slow") == {}, "a cleared task started again"
    finally:
        host.stop()


def test_sigterm_stops_the_host_cleanly(tmp_path: Path) -> None:
    host = Host(tmp_path / "storage")
    host.start()
    assert host.process is not None
    code = host.stop()
    err = host.stderr()
    assert code == 0, err[-2000:]
    assert "local-disk host stopped" in err
    owners = tmp_path / "storage" / "tasks" / "owners"
    assert owners.is_dir() and not list(owners.glob("*.lock")), "its owner lock stayed"
