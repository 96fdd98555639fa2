"""The benchmark keeps running as the library changes (it is not timed here: figures belong to
the benchmark's own runs, not to tests on a shared machine)."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ENV

ROOT = Path(__file__).resolve().parents[2]


def test_the_rollback_benchmark_runs_at_a_small_size(capsys: pytest.CaptureFixture[str]) -> None:
    benchmark = runpy.run_path(str(ROOT / "benchmarks" / "rollback_scale.py"))
    benchmark["run"](50)
    assert "50 disks:" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.postgres
def test_the_workers_benchmark_runs_at_a_small_size() -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"the workers benchmark needs PostgreSQL: set {POSTGRES_ENV}")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "workers_throughput.py"), "--db", url,
         "--roots", "12", "--workers", "1,2"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for host in ("simulated", "local-disk"):
        for count in (1, 2):
            assert f"{host} host, {count} worker(s):" in result.stdout, result.stdout
    assert "3 rolled back" in result.stdout
