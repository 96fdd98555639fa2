"""`status`, `history` and `trace` on the database a real `endaction demo` run left behind."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from statemachines import CommandStatus, Outcome
from statemachines.core.machines.command_machine import COMMAND_MACHINE
from statemachines.core.machines.task_machine import TASK_MACHINE
from tests.cli.runner import Ran, endaction

COMMAND_PATH_OF_A_ROLLBACK = ["not_started", "executing", "waiting", "ending", "rolling_back",
                              "ended_failure"]
TASK_PATH = ["pending", "polling", "finished", "ending", "cleared"]


def cli(*args: str, cwd: Path | None = None) -> Ran:
    return endaction(*args, cwd=cwd)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real run, disk 1 of 3 failing: the database every test here reads."""
    folder = tmp_path_factory.mktemp("demo")
    db = str(folder / "demo.db")
    done = cli("demo", "--images", "3", "--fail", "1", "--json", "--db", db,
               "--storage", str(folder / "storage"))
    assert done.returncode == 5, done.stderr  # rolled back cleanly
    report: dict[str, Any] = json.loads(done.stdout)
    return {"db": db, "folder": folder, "report": report}


def view(demo: dict[str, Any], *args: str) -> dict[str, Any]:
    done = cli(*args, "--db", demo["db"], "--json", cwd=demo["folder"])
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def ids_of(demo: dict[str, Any], type_name: str) -> list[str]:
    return [c["id"] for c in demo["report"]["commands"] if c["type"] == type_name]


def test_status_of_the_last_root(demo: dict[str, Any]) -> None:
    root = view(demo, "status")["command"]
    assert root["id"] == demo["report"]["root"]["id"]
    assert (root["type"], root["status"]) == ("AddVmFromTemplate", CommandStatus.ENDED_FAILURE)
    clones = root["children"]
    assert [c["type"] for c in clones] == ["CreateCloneOfTemplate"] * 3
    vm = demo["report"]["root"]["vm"]
    for index, clone in enumerate(clones):
        assert clone["entity"] == f"image:{vm}-disk{index}"
        [copy] = clone["tasks"]
        assert copy["verb"] == "copy_image"
        assert copy["host_result"] == ("failure" if index == 1 else "success")
        # Every clone is undone, the failed one too (it left a partial file).
        [removal] = clone["children"]
        assert removal["type"] == "RemoveImage"
        assert removal["execution_reason"] == "ROLLBACK_FLOW"
        assert removal["compensates"] == clone["id"]
        assert (removal["status"], removal["outcome"]) == (CommandStatus.ENDED_FAILURE,
                                                           Outcome.REVERTED)
        [delete] = removal["tasks"]
        assert (delete["verb"], delete["host_result"], delete["status"]) == (
            "delete_image", "success", "cleared")


def test_status_of_a_child_is_its_subtree(demo: dict[str, Any]) -> None:
    clone_id = ids_of(demo, "CreateCloneOfTemplate")[0]
    clone = view(demo, "status", clone_id)["command"]
    assert clone["id"] == clone_id
    assert [c["type"] for c in clone["children"]] == ["RemoveImage"]


def test_history_rows_are_the_machine_transitions(demo: dict[str, Any]) -> None:
    removal = ids_of(demo, "RemoveImage")[0]
    result = view(demo, "history", removal)
    rows = result["rows"]
    assert result["kind"] == "command" and result["root_id"] == demo["report"]["root"]["id"]
    assert [r["trigger"] for r in rows] == [
        "create", "execute", "executed", "claim_end", "end", "rolled_back"]
    assert [r["dest"] for r in rows] == COMMAND_PATH_OF_A_ROLLBACK
    assert rows[0]["source"] is None and "ROLLBACK_FLOW" in rows[0]["detail"]
    for before, row in itertools.pairwise(rows):
        assert row["source"] == before["dest"]
        assert row["at"] >= before["at"]
        # Each move is one the command machine defines for that trigger.
        dests = [d for d, _ in COMMAND_MACHINE._table[(row["trigger"], row["source"])]]
        assert row["dest"] in dests


def test_history_of_the_whole_tree(demo: dict[str, Any]) -> None:
    removal = ids_of(demo, "RemoveImage")[0]
    rows = view(demo, "history", removal, "--tree")["rows"]
    report = demo["report"]
    assert {r["object_id"] for r in rows} == (
        {c["id"] for c in report["commands"]} | {t["id"] for t in report["tasks"]})
    moves = [r for r in rows if r["source"] and r["source"] != r["dest"]]
    for row in moves:
        machine = COMMAND_MACHINE if row["kind"] == "command" else TASK_MACHINE
        assert (row["trigger"], row["source"]) in machine._table


def test_trace_of_an_opposite_command(demo: dict[str, Any]) -> None:
    removal = ids_of(demo, "RemoveImage")[0]
    result = view(demo, "trace", removal, "--out", "traces")
    assert (result["type"], result["status"]) == ("RemoveImage", CommandStatus.ENDED_FAILURE)
    assert [s["state"] for s in result["path"]] == COMMAND_PATH_OF_A_ROLLBACK
    assert [s["step"] for s in result["path"]] == [1, 2, 3, 4, 5, 6]
    assert [s["trigger"] for s in result["path"]][4] == "end"
    times = [s["at"] for s in result["path"]]
    assert times == sorted(times)
    [written] = result["files"]
    mermaid = (demo["folder"] / written).read_text()
    assert written.endswith(f"trace-{removal}.mmd")
    assert f'"ending<br/>4. {times[3][11:23]}"' in mermaid
    assert "class ended_failure s_active" in mermaid
    assert "class ended_success s_default" in mermaid  # never visited, not highlighted


def test_trace_of_a_task(demo: dict[str, Any]) -> None:
    task = demo["report"]["tasks"][0]
    result = view(demo, "trace", task["id"], "--out", "traces")
    assert (result["kind"], result["type"]) == ("task", task["verb"])
    assert [s["state"] for s in result["path"]] == TASK_PATH


def test_trace_svg(demo: dict[str, Any]) -> None:
    pytest.importorskip("graphviz")
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` is not installed")
    root = demo["report"]["root"]["id"]
    result = view(demo, "trace", root, "--out", "svg", "--format", "mmd,svg")
    svg = (demo["folder"] / result["files"][1]).read_text()
    assert svg.startswith("<?xml") and CommandStatus.ENDED_FAILURE in svg and "6. " in svg


@pytest.mark.parametrize("command", ["status", "history", "trace"])
def test_unknown_id_is_named(demo: dict[str, Any], command: str) -> None:
    done = cli(command, "no-such-id", "--db", demo["db"], cwd=demo["folder"])
    assert done.returncode == 2
    assert "no command or task with id 'no-such-id'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["status"], ["history", "x"], ["trace", "x"]])
def test_a_missing_database_is_not_created(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nothing.db"
    done = cli(*command, "--db", str(missing), cwd=tmp_path)
    assert done.returncode == 2
    assert f"no database at {missing}" in done.stderr
    assert not missing.exists()


def test_text_views_are_plain_when_piped(demo: dict[str, Any]) -> None:
    removal = ids_of(demo, "RemoveImage")[0]
    status = cli("status", "--db", demo["db"])
    assert status.returncode == 0, status.stderr
    assert "[ROLLBACK_FLOW] ended_failure (reverted)" in status.stdout
    assert "\x1b[" not in status.stdout
    history = cli("history", removal, "--db", demo["db"])
    assert "rolling_back -> ended_failure" in history.stdout.replace("  ", " ")
    trace = cli("trace", removal, "--db", demo["db"], "--out", str(demo["folder"] / "t"))
    assert "ending --end--> rolling_back" in trace.stdout


def test_status_text_is_coloured_by_state() -> None:
    from statemachines.toolkit.status_view import render_status

    def node(id_: str, status: str, children: list[dict[str, Any]],
             compensates: str | None = None) -> dict[str, Any]:
        return {"id": id_, "type": "T", "status": status, "execution_reason": "REGULAR_FLOW",
                "compensates": compensates, "outcome": None, "error": None, "entity": None,
                "step": 1, "output": None, "tasks": [], "children": children}

    text = render_status({"command": node("root", "rolling_back", [
        node("a", "ended_success", []), node("b", "ended_failure", [], compensates="a")])})
    assert "\x1b[33mrolling_back\x1b[0m" in text
    assert "\x1b[32mended_success\x1b[0m" in text
    assert "[ROLLBACK_FLOW] \x1b[31mended_failure\x1b[0m" in text


def test_the_views_show_steps_attempts_outputs_and_the_first_cause(tmp_path: Path) -> None:
    """A tenant onboarding (tests/tenant) whose certificate fails three times.

    It runs through the library on a file; `status`, `trace` and `history` read it like any
    database.
    """
    from persistence import open_store
    from statemachines import Engine
    from statemachines.testing import ManualClock
    from tests.tenant import TENANT_LEDGERS, TenantHosts, tenant_parameters, tenant_registry

    db = str(tmp_path / "tenants.db")
    store = open_store(db, ledgers=TENANT_LEDGERS)
    clock = ManualClock()
    hosts = TenantHosts(fail={"issue_certificate": ["CA offline"] * 3})
    engine = Engine(store, hosts.agents(), tenant_registry(), clock=clock, sleep=clock.sleep)
    root = engine.submit("OnboardTenant", tenant_parameters("acme"))
    engine.run_until_idle()
    store.dispose()

    status = cli("status", root, "--db", db, "--json")
    assert status.returncode == 0, status.stderr
    top = json.loads(status.stdout)["command"]
    assert top["error"].endswith("issue_certificate failed on agent 'pki': CA offline")
    assert top["step"] == 2
    by_type = {c["type"]: c for c in top["children"]}
    certificate = by_type["IssueCertificate"]
    assert certificate["outcome"] == "failed" and certificate["own_work_succeeded"] is False
    assert [(t["attempt"], t["max_attempts"], t["retried"]) for t in certificate["tasks"]] == [
        (1, 3, True), (2, 3, True), (3, 3, False)]
    database = by_type["CreateDatabase"]
    assert database["output"] == {"dsn": "postgresql://db.internal:5432/acme"}
    assert [r["resource"] for r in database["resources"]] == [
        "database:acme", "schema:acme.app", "schema:acme.audit", "db_user:acme.app"]
    assert {r["revert_state"] for r in database["resources"]} == {"reverted"}
    text = cli("status", root, "--db", db).stdout
    assert "attempt 2 of 3, retried" in text and "host finished/failure: CA offline" in text
    assert 'output {"dsn": "postgresql://db.internal:5432/acme"}' in text

    trace = cli("trace", certificate["id"], "--db", db, "--json", "--out", str(tmp_path))
    events = json.loads(trace.stdout)["events"]
    assert [e["event"] for e in events][:2] == ["retry", "retry"]
    assert "issue_certificate attempt 3 of 3" in events[1]["detail"]
    onboarding = cli("trace", root, "--db", db, "--out", str(tmp_path)).stdout
    assert "stepping --next_step--> executing" in onboarding
    history = cli("history", root, "--db", db, "--tree").stdout
    # The root was waiting for its certificate step: once it failed, no step followed.
    assert "retry" in history and "skip_steps   stepping -> waiting" in history
