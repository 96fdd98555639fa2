"""The CLI's JSON contract and exit codes, on real files.

In-process, but for the runs a test kills with SIGKILL, which are real processes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from statemachines import CommandStatus
from tests.cli.runner import Ran, endaction, endaction_process

CONTRACT = {
    "root": {"id", "type", "status"},
    "commands": {"id", "type", "status", "parent_id", "execution_reason"},
    "tasks": {"id", "command_id", "verb", "status", "host_result"},
}


def run(tmp_path: Path, *args: str) -> Ran:
    where = ("--db", str(tmp_path / "demo.db"), "--storage", str(tmp_path / "storage"))
    if "--crash-after" in args:
        return endaction_process(*args, *where)
    return endaction(*args, *where)


def parse(result: Ran) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    for key, fields in CONTRACT.items():
        rows = report[key] if isinstance(report[key], list) else [report[key]]
        for row in rows:
            assert fields <= set(row), f"{key} lacks {fields - set(row)}"
    assert isinstance(report["images_on_disk"], list)
    assert isinstance(report["leftovers"], list)
    return report


def assert_rolled_back(report: dict[str, Any], disks: int, failed: set[int]) -> None:
    assert report["root"]["status"] == CommandStatus.ENDED_FAILURE
    vm = report["root"]["vm"]
    removals = {c["id"]: c for c in report["commands"] if c["type"] == "RemoveImage"}
    assert all(c["execution_reason"] == "ROLLBACK_FLOW" for c in removals.values())
    clones = {c["id"]: c for c in report["commands"] if c["type"] == "CreateCloneOfTemplate"}
    compensated = {clones[c["parent_id"]]["entity"] for c in removals.values()}
    succeeded = {f"image:{vm}-disk{i}" for i in range(disks) if i not in failed}
    assert succeeded <= compensated, "every successful sibling gets a ROLLBACK_FLOW RemoveImage"
    assert report["leftovers"] == []
    assert report["images_on_disk"] == []


def test_demo_with_a_failure_rolls_back_cleanly(tmp_path: Path) -> None:
    result = run(tmp_path, "demo", "--images", "5", "--fail", "2", "--json")
    assert result.returncode == 5, result.stderr  # a clean rollback, told from a success
    assert_rolled_back(parse(result), 5, {2})
    assert "step" in result.stderr  # progress goes to stderr, stdout stays one JSON object


def test_demo_success_keeps_the_images(tmp_path: Path) -> None:
    result = run(tmp_path, "demo", "--images", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = parse(result)
    assert report["root"]["status"] == CommandStatus.ENDED_SUCCESS
    vm = report["root"]["vm"]
    assert report["images_on_disk"] == [f"{vm}-disk{i}" for i in range(3)]
    assert report["leftovers"] == []
    assert all(t["host_result"] == "success" for t in report["tasks"])


def test_text_output_is_a_readable_summary(tmp_path: Path) -> None:
    result = run(tmp_path, "demo", "--images", "2", "--fail", "0")
    assert result.returncode == 5, result.stderr
    assert "RemoveImage" in result.stdout and "[ROLLBACK_FLOW]" in result.stdout
    assert "leftovers: none" in result.stdout


# A real run of this demo persists 8 or 9 steps, depending on how the copies interleave with
# the polls, so these points all fall inside it; tests/integration/test_crash_recovery.py
# covers every step of a deterministic run.
@pytest.mark.parametrize("crash_after", [1, 2, 3, 4, 5, 6])
def test_crash_then_resume_ends_the_same_way(tmp_path: Path, crash_after: int) -> None:
    crashed = run(tmp_path, "demo", "--images", "5", "--fail", "2", "--json",
                  "--crash-after", str(crash_after))
    assert crashed.returncode == -9, crashed.stderr  # killed, like kill -9
    resumed = run(tmp_path, "resume", "--json")
    assert resumed.returncode == 5, resumed.stderr
    assert_rolled_back(parse(resumed), 5, {2})
    again = run(tmp_path, "resume", "--json")
    assert again.returncode == 5
    assert parse(again)["root"] == parse(resumed)["root"]
    assert "nothing left to do" in again.stderr


def test_leftovers_give_exit_status_3(tmp_path: Path) -> None:
    stray = tmp_path / "storage" / "images"
    stray.mkdir(parents=True)
    (stray / "orphan.img").write_bytes(b"x")
    result = run(tmp_path, "demo", "--images", "1", "--json")
    assert result.returncode == 3
    assert parse(result)["leftovers"] == ["orphan"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--images", "3", "--fail", "3"], "out of range"),
        (["demo", "--images", "0"], "--images"),
        (["demo"], "Missing option '--images'"),
        (["demo", "--images", "2", "--crash-after", "0"], "--crash-after"),
        (["resume"], "nothing to resume"),
    ],
)
def test_bad_usage_exits_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_bad_database_url_is_named(tmp_path: Path) -> None:
    result = endaction("demo", "--images", "1", "--db", "nosuchdb+foo://x",
                       "--storage", str(tmp_path / "s"))
    assert result.returncode == 2
    assert "nosuchdb+foo://x" in result.stderr


def test_resume_without_a_database_creates_none(tmp_path: Path) -> None:
    result = run(tmp_path, "resume")
    assert result.returncode == 2
    assert "no database at" in result.stderr
    assert not (tmp_path / "demo.db").exists()


def test_unusable_storage_is_an_error_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "images").write_text("a file where a directory should be")
    result = run(tmp_path, "demo", "--images", "1")
    assert result.returncode == 1
    assert "Error:" in result.stderr and "Traceback" not in result.stderr


def test_the_storage_directory_is_pinned_in_the_database(tmp_path: Path) -> None:
    def cli(*args: str) -> Ran:
        where = ("--db", str(tmp_path / "demo.db"))
        if "--crash-after" in args:
            return endaction_process(*args, *where, cwd=tmp_path)
        return endaction(*args, *where, cwd=tmp_path)

    crashed = cli("demo", "--images", "4", "--fail", "1", "--crash-after", "3",
                  "--storage", str(tmp_path / "A"))
    assert crashed.returncode == -9
    elsewhere = cli("resume", "--storage", str(tmp_path / "B"))
    assert elsewhere.returncode == 2
    assert f"keeps its images in {tmp_path / 'A'}" in elsewhere.stderr
    resumed = cli("resume", "--json")  # no --storage: the pinned directory is used
    assert resumed.returncode == 5, resumed.stderr
    assert parse(resumed)["leftovers"] == []
    assert list((tmp_path / "A" / "images").iterdir()) == []


def test_progress_numbers_every_persisted_step(tmp_path: Path) -> None:
    result = run(tmp_path, "demo", "--images", "2", "--crash-after", "4")
    assert result.returncode == -9
    steps = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert [s.split(":")[0] for s in steps] == ["step 1", "step 2", "step 3", "step 4"]
    assert "submitted AddVmFromTemplate" in steps[0]
