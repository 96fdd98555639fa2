"""A storage directory on a filesystem that fills up: the run ends, it never hangs.

The copy failed with ENOSPC, the journal could not record it, and the task stayed `running`
under a live owner until the loop gave up after 100,000 ticks. These tests mount a real, small
tmpfs (root only: they skip, saying so, where mounting is not allowed).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from statemachines import CommandStatus
from tests.cli.runner import endaction

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=7680k", "tmpfs",
                              str(mount_point)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a small tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_demo_whose_storage_fills_up_ends_and_leaves_nothing(
    tmp_path: Path, small_disk: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """3 templates of 2 MiB fill 6 of its 7.5 MiB: every copy fails for lack of space."""
    result = endaction("demo", "--images", "3", "--json", "--db", str(tmp_path / "demo.db"),
                       "--storage", str(small_disk))
    assert result.returncode == 5, result.stderr  # failed, and nothing is left
    report = json.loads(result.stdout)
    assert report["root"]["status"] == CommandStatus.ENDED_FAILURE
    copies = [t for t in report["tasks"] if t["verb"] == "copy_image"]
    assert all("No space left on device" in (t["message"] or "") for t in copies)
    assert report["leftovers"] == [] and report["images_on_disk"] == []
    assert list((small_disk / "images").iterdir()) == []
    assert list((small_disk / "tasks").glob("*.json")) == []
    assert "released the journal reserve" in caplog.text


def test_templates_that_do_not_fit_are_an_error_line(tmp_path: Path, small_disk: Path) -> None:
    result = endaction("demo", "--images", "5", "--db", str(tmp_path / "demo.db"),
                       "--storage", str(small_disk))
    assert result.returncode == 1
    assert "cannot write the template disks" in result.stderr
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
