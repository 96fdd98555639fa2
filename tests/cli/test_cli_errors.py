"""Every way a user can point the CLI at the wrong database or storage: one line, a status.

In-process (click's runner): these are contract tests of messages and exit statuses.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from statemachines.cli.main import cli

READ_VIEWS = [["status"], ["history", "abc"], ["history", "abc", "--tree"], ["trace", "abc"]]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def one_line_error(result: Result) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("view", READ_VIEWS)
@pytest.mark.parametrize(("db", "status", "says"), [
    ("/etc/passwd", 2, "is not a SQLite database"),
    ("foo://bar", 2, "is not a database URL"),
    ("postgresql://nobody@127.0.0.1:1/x", 1, "Connection refused"),
    ("sqlite:////nonexistent/dir/x.db", 2, "no database at /nonexistent/dir/x.db"),
])
def test_a_read_view_on_a_bad_database_says_what_is_wrong(view: list[str], db: str,
                                                          status: int, says: str) -> None:
    result = invoke(*view, "--db", db)
    assert result.exit_code == status, result.output
    assert says in one_line_error(result)


@pytest.mark.parametrize("command", [["demo", "--images", "1"], ["resume"], *READ_VIEWS])
def test_an_empty_db_option_is_refused_not_taken_as_the_default(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(*command, "--db", "")
    assert result.exit_code == 2
    assert "must not be empty" in result.output
    assert not list(tmp_path.rglob("*.db"))


def test_the_database_can_come_from_the_environment(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    result = invoke("demo", "--images", "1", "--storage", str(tmp_path / "s"), "--json",
                    env={"ENDACTION_DB": str(db)})
    assert result.exit_code == 0, result.output
    assert invoke("status", env={"ENDACTION_DB": str(db)}).exit_code == 0


def test_resume_on_an_empty_database_has_nothing_to_resume(tmp_path: Path) -> None:
    """What a set-up killed before its commit leaves: an empty file."""
    db = tmp_path / "empty.db"
    db.touch()
    result = invoke("resume", "--db", str(db), "--storage", str(tmp_path / "s"))
    assert result.exit_code == 2
    assert "nothing to resume" in one_line_error(result)
    assert db.read_bytes() == b""


@pytest.mark.parametrize("command", [
    ["demo", "--images", "1", "--storage", "s"], ["resume", "--storage", "s"], ["status"]])
def test_another_applications_database_is_refused_and_left_untouched(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE commands (id INTEGER PRIMARY KEY, shell TEXT)")
        conn.execute("INSERT INTO commands (shell) VALUES ('ls')")
    before = _digest(db)
    result = invoke(*command, "--db", str(db))
    assert result.exit_code == 2
    assert "is not an endaction database" in one_line_error(result)
    assert _digest(db) == before
    assert not (tmp_path / "s").exists()


def test_a_storage_directory_that_never_worked_is_not_pinned(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    bad = invoke("demo", "--images", "1", "--db", db, "--storage", "/proc/endaction-storage")
    assert bad.exit_code == 1
    assert "storage directory /proc/endaction-storage is unusable" in one_line_error(bad)
    good = invoke("demo", "--images", "1", "--db", db, "--storage", str(tmp_path / "good"),
                  "--json")
    assert good.exit_code == 0, good.output
    elsewhere = invoke("resume", "--db", db, "--storage", str(tmp_path / "other"))
    assert elsewhere.exit_code == 2
    assert f"keeps its images in {tmp_path / 'good'}" in one_line_error(elsewhere)


def test_a_database_folder_that_cannot_be_made_is_an_error_line() -> None:
    result = invoke("demo", "--images", "1", "--db", "/proc/no-such-folder/x.db")
    assert result.exit_code == 1
    assert "cannot make the folder /proc/no-such-folder" in one_line_error(result)


def test_a_database_without_its_driver_is_named() -> None:
    result = invoke("status", "--db", "mysql://user@host/db")
    assert result.exit_code == 2
    assert "no driver for --db 'mysql://user@host/db'" in one_line_error(result)


@pytest.mark.parametrize("db", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused(db: str) -> None:
    result = invoke("demo", "--images", "1", "--db", db)
    assert result.exit_code == 2
    assert "in-memory SQLite database, which keeps nothing" in one_line_error(result)


@pytest.mark.parametrize("value", ["nan", "inf", "0"])
def test_a_task_timeout_must_be_a_finite_number_of_seconds(value: str) -> None:
    result = invoke("demo", "--images", "1", "--task-timeout", value)
    assert result.exit_code == 2 and "--task-timeout" in result.output


def test_a_database_name_too_long_for_the_filesystem_is_one_line() -> None:
    result = invoke("status", "--db", "a" * 300 + ".db")
    assert result.exit_code == 2
    assert "File name too long" in one_line_error(result)


def test_a_task_its_host_still_holds_is_left_behind() -> None:
    from statemachines.toolkit.run_report import run_exit_status

    report: dict[str, Any] = {"root": {"status": "ended_failure"}, "leftovers": [],
                              "tasks": [{"status": "cleared"}, {"status": "clear_failed"}]}
    assert run_exit_status(report) == 3
    report["tasks"] = [{"status": "cleared"}]
    assert run_exit_status(report) == 5  # a clean rollback: told apart from a success
    report["root"] = {"status": "ended_success"}
    assert run_exit_status(report) == 0
