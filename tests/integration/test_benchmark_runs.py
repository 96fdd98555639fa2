"""The benchmark keeps running as the library changes (it is not timed here: figures belong to
the benchmark's own runs, not to tests on a shared machine)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_rollback_benchmark_runs_at_a_small_size(capsys: pytest.CaptureFixture[str]) -> None:
    benchmark = runpy.run_path(str(ROOT / "benchmarks" / "rollback_scale.py"))
    benchmark["run"](50)
    assert "50 disks:" in capsys.readouterr().out
