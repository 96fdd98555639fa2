"""The metrics as Prometheus gets them, scraped over loopback HTTP from real processes.

`endaction worker --metrics-port 0` and `endaction agent serve` run as real processes and are
scraped while they work.

- the worker prints the port it bound; its counts reach the roots submitted, its revert gauge
  follows the database (a `demo` that leaves a resource revert_failed, run beside it), and it stops
  cleanly on SIGTERM;
- a port in use is one `Error:` line, exit 1, before the database is opened;
- the task host's /metrics counts the worker's calls by route, and needs the token unless the host
  was started with --metrics-open.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.hosts import Host
from tests.cli.runner import endaction

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _params(vm: str, disks: int, fail: tuple[int, ...] = ()) -> str:
    return json.dumps({"vm": vm, "disks": [
        {"source": f"template-disk{i % 3}", "inject_failure": i in fail}
        for i in range(disks)]})


def _parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    answer = httpx.get(url, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return _parse(answer.text)


def scrape_until(url: str, done: Callable[[Samples], bool], what: str,
                 headers: dict[str, str] | None = None, timeout: float = 90) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url, headers)
        if done(samples):
            return samples
        assert time.monotonic() < deadline, f"the metrics never showed {what}: {samples}"
        time.sleep(0.2)


@contextmanager
def worker(tmp_path: Path, *agent: str) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """A worker process on tmp_path/e.db serving its metrics on a free port it prints."""
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "statemachines.cli", "worker", "--db",
             str(tmp_path / "e.db"), *agent, "--agent-option", "templates=3", "--name", "w1",
             "--interval", "0.2", "--metrics-port", "0"],
            stdout=subprocess.DEVNULL, stderr=out, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)",
                                      log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no metrics address: {log.read_text()}"
            time.sleep(0.05)
        yield process, found.group(1), log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def stop(process: subprocess.Popen[str], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()
    said = log.read_text()
    assert "w1 stopped" in said and "Traceback" not in said, said


def test_a_worker_serves_its_counts_and_the_revert_failed_gauge(tmp_path: Path) -> None:
    db, storage = str(tmp_path / "e.db"), str(tmp_path / "storage")
    with worker(tmp_path, "--storage", storage) as (process, url, log):
        before = scrape(url)
        assert value(before, "endaction_roots_ended_total", result="failed") == 0
        assert value(before, "endaction_roots_held", worker="w1") == 0
        for vm, disks, fail in (("vm1", 2, ()), ("vm2", 3, (1,)), ("vm3", 1, ())):
            ran = endaction("submit", "AddVmFromTemplate", "--params",
                            _params(vm, disks, fail), "--db", db)
            assert ran.returncode == 0, ran
        ended = scrape_until(url, lambda s: total(s, "endaction_roots_ended_total") == 3,
                             "three roots ended")
        assert value(ended, "endaction_roots_ended_total", result="failed") == 1
        assert value(ended, "endaction_roots_ended_total", result="succeeded") == 2
        assert value(ended, "endaction_compensations_started_total") >= 2
        assert value(ended, "endaction_command_transitions_total", type="AddVmFromTemplate",
                     status="ended_success", flow="regular") == 2
        assert value(ended, "endaction_tasks_ended_total", verb="copy_image",
                     result="failure") == 1
        assert value(ended, "endaction_tick_duration_seconds_count", committed="true") > 0
        assert value(ended, "endaction_agent_call_duration_seconds_count", agent="storage",
                     call="clear") >= 6
        assert value(ended, "endaction_revert_failed_resources") == 0
        assert value(ended, "endaction_database_outages_total", worker="w1") == 0

        # A demo beside the worker leaves one resource revert_failed: the gauge is the
        # database's, read at the scrape, whichever process left it.
        demo = endaction("demo", "--images", "3", "--fail", "1", "--fail-rollback", "2",
                         "--db", db, "--storage", storage)
        assert demo.returncode == 3, demo
        scrape_until(url, lambda s: value(s, "endaction_revert_failed_resources") == 1,
                     "the resource the demo left revert_failed")
        assert httpx.get(url.replace("/metrics", "/other"), timeout=10).status_code == 404
        stop(process, log)


def test_a_metrics_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        ran = endaction("worker", "--db", str(tmp_path / "e.db"), "--storage",
                        str(tmp_path / "s"), "--metrics-port", port)
    assert ran.returncode == 1, ran
    errors = [line for line in ran.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0], ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "e.db").exists(), "the database was opened before the port"


def test_a_task_host_serves_its_metrics_to_token_holders_or_to_all(tmp_path: Path) -> None:
    host = Host(tmp_path / "host", logs=tmp_path)
    host.start()
    try:
        with worker(tmp_path, "--agent-url", host.url, "--agent-token-file",
                    str(host.token_file)) as (process, url, log):
            ran = endaction("submit", "AddVmFromTemplate", "--params", _params("vm1", 2, (1,)),
                            "--db", str(tmp_path / "e.db"))
            assert ran.returncode == 0, ran
            scrape_until(url, lambda s: total(s, "endaction_roots_ended_total") == 1,
                         "the root ended")
            stop(process, log)
        metrics = f"{host.url}/metrics"
        assert httpx.get(metrics, timeout=10).status_code == 401
        token = {"Authorization": f"Bearer {host.token_file.read_text().strip()}"}
        served = scrape(metrics, token)
        task = "/v1/tasks/{task_id}"
        # Two copies and the rollback's deletes: started (PUT) and cleared (DELETE).
        assert value(served, "endaction_host_requests_total", route=task, method="PUT",
                     status="200") >= 3
        assert value(served, "endaction_host_requests_total", route=task, method="DELETE",
                     status="200") >= 3
        assert value(served, "endaction_host_requests_total", route="/v1/poll",
                     method="POST", status="200") >= 1
        assert value(served, "endaction_host_task_duration_seconds_count",
                     verb="copy_image", result="failure") == 1
        assert value(served, "endaction_host_tasks_running") == 0
    finally:
        assert host.stop() == 0, host.stderr()
    assert "Traceback" not in host.stderr()

    (tmp_path / "open-logs").mkdir()
    open_host = Host(tmp_path / "open", "--metrics-open", logs=tmp_path / "open-logs")
    open_host.start()
    try:
        assert "endaction_host_tasks_running" in httpx.get(f"{open_host.url}/metrics",
                                                           timeout=10).text
        assert httpx.get(f"{open_host.url}/v1/health", timeout=10).status_code == 401
    finally:
        assert open_host.stop() == 0, open_host.stderr()
