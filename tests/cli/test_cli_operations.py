"""The operator's commands end to end: a failing compensation and cleanup, cancel, release.

In-process (click's runner) against real SQLite files and a real storage directory; the end
state is read from the database and the files, not from the commands' own reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from statemachines import CommandStatus, Outcome, RevertState
from statemachines.cli.main import cli
from tests.cli.runner import endaction_process
from tests.worlds import images_in, vm_store


def invoke(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", str(tmp_path / "demo.db")])


def with_storage(tmp_path: Path, *args: str) -> Result:
    return invoke(tmp_path, *args, "--storage", str(tmp_path / "storage"))


def report_of(result: Result) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def files_left(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "storage" / "images").iterdir())


def test_a_compensation_that_fails_for_good_is_left_for_cleanup(tmp_path: Path) -> None:
    ran = with_storage(tmp_path, "demo", "--images", "4", "--fail", "1",
                       "--fail-rollback", "2", "--json")
    assert ran.exit_code == 3, ran.output
    report = report_of(ran)
    vm = report["root"]["vm"]
    assert report["root"]["status"] == CommandStatus.ROLLBACK_FAILED
    assert report["leftovers"] == [f"{vm}-disk2"]
    assert files_left(tmp_path) == [f"{vm}-disk2.img"]
    attempts = [c for c in report["commands"]
                if c["type"] == "RemoveImage" and c["entity"] == f"image:{vm}-disk2"]
    assert [c["outcome"] for c in attempts] == [Outcome.ATTEMPT_FAILED] * 3  # bounded retries

    cleaned = with_storage(tmp_path, "cleanup", "--json")
    assert cleaned.exit_code == 0, cleaned.output
    assert report_of(cleaned)["retried"][0]["state"] == Outcome.REVERTED
    assert report_of(cleaned)["leftovers"] == []
    assert files_left(tmp_path) == []
    store = vm_store(str(tmp_path / "demo.db"), create=False)
    assert images_in(store) == []
    assert {r.state for r in store.reverts()} == {RevertState.REVERTED}
    store.dispose()

    again = with_storage(tmp_path, "cleanup")
    assert again.exit_code == 0 and "nothing was left revert_failed" in again.stdout

    # The root no longer reads as broken: status says cleaned_up, and waiting on it is 5
    # (it failed, and nothing it made is left), no longer 3.
    root = report["root"]["id"]
    status = invoke(tmp_path, "status", root, "--json")
    assert json.loads(status.stdout)["command"]["outcome"] == Outcome.CLEANED_UP
    waited = invoke(tmp_path, "status", root, "--wait", "--timeout", "5")
    assert waited.exit_code == 5, waited.output
    assert "rollback_failed (cleaned_up)" in waited.stdout


def test_cancel_then_resume_compensates_what_the_crashed_run_had_done(tmp_path: Path) -> None:
    """The crash is a real SIGKILL, so that run is a subprocess; the rest runs in-process.

    It dies right after its copies started (step 3), before any of them can have ended.
    """
    crashed = endaction_process("demo", "--images", "3", "--crash-after", "3",
                                "--db", str(tmp_path / "demo.db"),
                                "--storage", str(tmp_path / "storage"))
    assert crashed.returncode == -9, crashed.stderr
    store = vm_store(str(tmp_path / "demo.db"), create=False)
    root = store.last_root_id()
    store.dispose()
    assert root is not None

    cancelled = invoke(tmp_path, "cancel", root, "--reason", "not needed after all")
    assert cancelled.exit_code == 0, cancelled.output
    resumed = with_storage(tmp_path, "resume", "--json")
    assert resumed.exit_code == 5, resumed.output  # cancelled, everything undone
    report = report_of(resumed)
    assert (report["root"]["status"], report["root"]["outcome"]) == (CommandStatus.ENDED_FAILURE,
                                                                     "cancelled")
    assert report["root"]["error"] == "cancelled: not needed after all"
    assert report["leftovers"] == [] and files_left(tmp_path) == []


@pytest.mark.parametrize(("target", "says"), [
    ("nope", "no command with id 'nope'"),
    ("child", "not a root: cancel its root"),
    ("root", "has already ended ended_success"),
])
def test_cancel_refuses_what_is_not_a_running_root(tmp_path: Path, target: str,
                                                    says: str) -> None:
    ran = with_storage(tmp_path, "demo", "--images", "1", "--json")
    report = report_of(ran)
    ids = {"nope": "nope", "root": report["root"]["id"],
           "child": next(c["id"] for c in report["commands"] if c["parent_id"])}
    refused = invoke(tmp_path, "cancel", ids[target])
    assert refused.exit_code == 2
    assert says in refused.output


def test_release_of_a_root_that_is_not_held_is_refused(tmp_path: Path) -> None:
    ran = with_storage(tmp_path, "demo", "--images", "1", "--json")
    refused = invoke(tmp_path, "release", report_of(ran)["root"]["id"])
    assert refused.exit_code == 2 and "is not held" in refused.output


def test_cleanup_without_a_database_creates_none(tmp_path: Path) -> None:
    result = with_storage(tmp_path, "cleanup")
    assert result.exit_code == 2 and "nothing to clean up" in result.output
    assert not (tmp_path / "demo.db").exists()
