"""The local-disk storage agent against real files and a real journal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from statemachines import HostResult, HostStatus, LocalDiskAgent, TaskRejected, TaskReport


def wait_for_end(agent: LocalDiskAgent, task_id: str) -> TaskReport:
    for _ in range(500):
        report = agent.poll([task_id])[task_id]
        if report.ended:
            return report
        time.sleep(0.01)
    raise AssertionError(f"task {task_id} never ended")


@pytest.fixture
def agent(tmp_path: Path) -> LocalDiskAgent:
    created = LocalDiskAgent(tmp_path / "storage")
    created.ensure_template("tmpl", 3 << 20)
    yield created
    created.close()


def test_copy_creates_an_identical_file(agent: LocalDiskAgent) -> None:
    agent.start("t1", "copy_image", {"source": "tmpl", "image": "vm-disk0"})
    report = wait_for_end(agent, "t1")
    assert report.succeeded
    assert agent.image_path("vm-disk0").read_bytes() == agent.template_path("tmpl").read_bytes()
    assert agent.image_names() == ["vm-disk0"]


def test_failed_copy_leaves_a_partial_file(agent: LocalDiskAgent) -> None:
    agent.start("t1", "copy_image", {"source": "tmpl", "image": "d", "inject_failure": True})
    report = wait_for_end(agent, "t1")
    assert (report.status, report.result) == (HostStatus.FINISHED, HostResult.FAILURE)
    assert "injected failure" in report.message
    partial = agent.image_path("d").stat().st_size
    assert 0 < partial < agent.template_path("tmpl").stat().st_size


def test_delete_is_idempotent(agent: LocalDiskAgent) -> None:
    agent.start("c", "copy_image", {"source": "tmpl", "image": "d"})
    wait_for_end(agent, "c")
    for task_id in ("r1", "r2"):
        agent.start(task_id, "delete_image", {"image": "d"})
        assert wait_for_end(agent, task_id).succeeded
    assert agent.image_names() == []


def test_start_is_idempotent_on_the_task_id(agent: LocalDiskAgent) -> None:
    agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
    wait_for_end(agent, "t1")
    agent.image_path("d").unlink()
    agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})  # must not copy again
    assert wait_for_end(agent, "t1").succeeded
    assert agent.image_names() == []


def test_bad_requests_are_rejected_by_name(agent: LocalDiskAgent) -> None:
    with pytest.raises(TaskRejected, match="no verb 'explode'"):
        agent.start("t", "explode", {"image": "d"})
    with pytest.raises(TaskRejected, match="no template image 'missing'"):
        agent.start("t", "copy_image", {"source": "missing", "image": "d"})
    with pytest.raises(TaskRejected, match="plain file name"):
        agent.start("t", "copy_image", {"source": "tmpl", "image": "../escape"})


def test_a_new_agent_finds_finished_tasks_in_the_journal(tmp_path: Path,
                                                         agent: LocalDiskAgent) -> None:
    agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
    wait_for_end(agent, "t1")
    restarted = LocalDiskAgent(tmp_path / "storage")
    try:
        assert restarted.poll(["t1", "never-started"]) == {
            "t1": TaskReport(HostStatus.FINISHED, HostResult.SUCCESS)}
        restarted.clear("t1")
        restarted.clear("t1")  # clearing twice is not an error
        assert restarted.poll(["t1"]) == {}
    finally:
        restarted.close()


def test_a_task_that_died_with_its_process_is_unknown(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        host = agent.owner.split(":")[0]
        entry: Mapping[str, object] = {"verb": "copy_image", "parameters": {}, "status": "running",
                                       "result": None, "message": "", "owner": f"{host}:{pid}:x"}
        (agent.journal / "t1.json").write_text(json.dumps(entry))
        report = agent.poll(["t1"])["t1"]
        assert report.status == HostStatus.UNKNOWN and not report.succeeded
        assert "which is gone" in report.message
    finally:
        agent.close()


def test_a_corrupt_journal_entry_is_reported_for_that_task_only(agent: LocalDiskAgent) -> None:
    agent.start("good", "copy_image", {"source": "tmpl", "image": "d"})
    wait_for_end(agent, "good")
    (agent.journal / "bad.json").write_text("{not json")
    answer = agent.poll(["good", "bad"])
    assert answer["good"].succeeded
    assert answer["bad"].status == HostStatus.UNKNOWN
    assert "corrupt journal file for task bad" in answer["bad"].message


def test_an_open_agent_of_this_process_is_alive(tmp_path: Path, agent: LocalDiskAgent) -> None:
    other = LocalDiskAgent(tmp_path / "storage")
    try:
        entry = {"verb": "copy_image", "parameters": {}, "status": "running", "result": None,
                 "message": "", "owner": other.owner}
        (agent.journal / "t1.json").write_text(json.dumps(entry))
        assert agent.poll(["t1"])["t1"].status == HostStatus.RUNNING
    finally:
        other.close()
    assert agent.poll(["t1"])["t1"].status == HostStatus.UNKNOWN
