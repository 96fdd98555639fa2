"""The local-disk storage agent against real files and a real journal."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from statemachines import AgentError, HostResult, HostStatus, TaskRejected, TaskReport
from statemachines.example.vm import LocalDiskAgent


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
    import hashlib

    agent.start("t1", "copy_image", {"source": "tmpl", "image": "vm-disk0"})
    report = wait_for_end(agent, "t1")
    assert report.succeeded
    copied = agent.image_path("vm-disk0").read_bytes()
    assert copied == agent.template_path("tmpl").read_bytes()
    assert agent.image_names() == ["vm-disk0"]
    # Its output says what was written: the size and checksum of the file on disk.
    assert report.output == {"bytes": len(copied), "sha256": hashlib.sha256(copied).hexdigest()}


def test_a_copys_output_is_journaled_and_survives_the_host(tmp_path: Path) -> None:
    first = LocalDiskAgent(tmp_path / "storage")
    first.ensure_template("tmpl", 3 << 20)
    first.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
    output = wait_for_end(first, "t1").output
    first.close()
    second = LocalDiskAgent(tmp_path / "storage")
    try:
        assert second.poll(["t1"])["t1"].output == output
        assert output is not None and output["bytes"] == 3 << 20
    finally:
        second.close()


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
        found = restarted.poll(["t1", "never-started"])
        assert list(found) == ["t1"]
        assert (found["t1"].status, found["t1"].result) == (HostStatus.FINISHED,
                                                            HostResult.SUCCESS)
        restarted.clear("t1")
        restarted.clear("t1")  # clearing twice is not an error
        assert restarted.poll(["t1"]) == {}
    finally:
        restarted.close()


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
    entry = {"verb": "delete_image", "parameters": {"image": "x"}, "status": "running",
             "result": None, "message": "", "owner": other.owner}
    (agent.journal / "t1.json").write_text(json.dumps(entry))
    assert agent.poll(["t1"])["t1"].status == HostStatus.RUNNING
    other.close()  # gone: its task is taken over and run again
    assert wait_for_end(agent, "t1").succeeded


SLOW_COPY = """
import sys, time
from statemachines.example.vm import LocalDiskAgent
agent = LocalDiskAgent(sys.argv[1], seconds_per_mib=0.5)
agent.ensure_template("tmpl", 8 << 20)
agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
print("started", flush=True)
time.sleep(60)
"""


def _kill_mid_copy(storage: Path) -> None:
    """A process starts a slow copy and is SIGKILLed in the middle of it."""
    process = subprocess.Popen([sys.executable, "-c", SLOW_COPY, str(storage)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "started"
    time.sleep(0.8)
    process.kill()
    process.wait()


@pytest.mark.slow
def test_a_task_that_died_with_its_process_is_resumed_and_finishes(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    _kill_mid_copy(storage)
    agent = LocalDiskAgent(storage)
    try:
        partial = agent.image_path("d").stat().st_size
        assert 0 < partial < 8 << 20, "the copy was killed half-way"
        report = wait_for_end(agent, "t1")
        assert report.succeeded, report
        assert agent.image_path("d").read_bytes() == agent.template_path("tmpl").read_bytes()
        entry = json.loads((agent.journal / "t1.json").read_text())
        assert entry["resumes"] == 1 and entry["owner"] == agent.owner
    finally:
        agent.close()


def test_owners_are_known_by_their_lock_not_their_hostname(tmp_path: Path) -> None:
    """A container restarted under another hostname used to trust its old journals forever.

    The task of an owner from another host was polled as running, and resume hung.
    """
    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        for task_id, owner in (("a", "old-container:4242:cafe"), ("b", "12345-deadbeef")):
            entry = {"verb": "delete_image", "parameters": {"image": task_id},
                     "status": "running", "result": None, "message": "", "owner": owner}
            (agent.journal / f"{task_id}.json").write_text(json.dumps(entry))
        assert wait_for_end(agent, "a").succeeded
        assert wait_for_end(agent, "b").succeeded
    finally:
        agent.close()


def test_a_task_that_keeps_losing_its_worker_is_reported_unknown(tmp_path: Path) -> None:
    agent = LocalDiskAgent(tmp_path / "storage", max_resumes=2)
    try:
        entry = {"verb": "delete_image", "parameters": {"image": "x"}, "status": "running",
                 "result": None, "message": "", "owner": "1-gone", "resumes": 2}
        (agent.journal / "t1.json").write_text(json.dumps(entry))
        report = agent.poll(["t1"])["t1"]
        assert report.status == HostStatus.UNKNOWN
        assert "lost its worker 3 times" in report.message
    finally:
        agent.close()


def test_abort_stops_a_copy_and_reports_a_failure(tmp_path: Path) -> None:
    agent = LocalDiskAgent(tmp_path / "storage", seconds_per_mib=0.2)
    try:
        agent.ensure_template("tmpl", 16 << 20)
        agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
        time.sleep(0.3)
        agent.abort("t1")
        report = wait_for_end(agent, "t1")
        assert (report.status, report.result) == (HostStatus.FINISHED, HostResult.FAILURE)
        assert "aborted" in report.message
        agent.abort("t1")  # aborting an ended task is no error
        agent.abort("unknown-task")
    finally:
        agent.close()


def test_two_agents_starting_one_task_at_once_run_it_once(tmp_path: Path) -> None:
    """The check-and-start is locked across instances (and processes).

    The journal of a task is written by exactly one of them.
    """
    first, second = (LocalDiskAgent(tmp_path / "storage", seconds_per_mib=0.5)
                     for _ in range(2))
    try:
        first.ensure_template("tmpl", 2 << 20)
        for round_number in range(20):
            task_id = f"t{round_number}"
            barrier = threading.Barrier(2)

            def start(agent: LocalDiskAgent, task_id: str = task_id,
                      barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                agent.start(task_id, "copy_image", {"source": "tmpl", "image": task_id})

            threads = [threading.Thread(target=start, args=(a,)) for a in (first, second)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            runners = [a for a in (first, second) if task_id in a._running]
            assert len(runners) == 1, f"round {round_number}: run by {len(runners)} agents"
    finally:
        first.close()
        second.close()


def test_a_full_disk_releases_the_reserve_so_outcomes_are_still_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        assert (agent.journal / ".reserve").stat().st_size == 1 << 20
        real = agent.task_journal._write_atomically
        full = {"left": 1}

        def write(task_id: str, entry: Mapping[str, object]) -> None:
            if full["left"] > 0:
                full["left"] -= 1
                raise OSError(errno.ENOSPC, "No space left on device")
            real(task_id, entry)

        monkeypatch.setattr(agent.task_journal, "_write_atomically", write)
        released = []
        real_release = agent.task_journal.release_reserve
        monkeypatch.setattr(agent.task_journal, "release_reserve",
                            lambda: released.append(True) or real_release())
        agent.start("t1", "delete_image", {"image": "x"})  # the first write fails: disk full
        assert released == [True] and full["left"] == 0
        assert wait_for_end(agent, "t1").succeeded
        assert (agent.journal / ".reserve").exists(), "taken up again once a delete freed space"
    finally:
        agent.close()


def test_an_outcome_the_journal_cannot_record_is_still_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        agent.start("t1", "delete_image", {"image": "x"})
        wait_for_end(agent, "t1")
        agent.clear("t1")
        real = agent.task_journal._write_atomically

        def write(task_id: str, entry: Mapping[str, object]) -> None:
            if entry.get("status") == "finished":
                raise OSError(errno.ENOSPC, "No space left on device")
            real(task_id, entry)

        monkeypatch.setattr(agent.task_journal, "_write_atomically", write)
        agent.start("t2", "delete_image", {"image": "y"})
        report = wait_for_end(agent, "t2")
        assert report.succeeded
        assert "could not record this" in report.message
        assert "No space left on device" in report.message
    finally:
        agent.close()


def test_a_start_whose_journal_entry_cannot_be_written_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        def write(task_id: str, entry: Mapping[str, object]) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(agent.task_journal, "_write_atomically", write)
        with pytest.raises(AgentError, match=r"cannot write the task journal in .*No space left"):
            agent.start("t1", "delete_image", {"image": "x"})
        assert agent.poll(["t1"]) == {}
    finally:
        agent.close()


def test_half_written_journal_entries_of_dead_agents_are_removed(tmp_path: Path) -> None:
    journal = tmp_path / "storage" / "tasks"
    journal.mkdir(parents=True)
    (journal / "t1.1-gone.139.tmp").write_text("{half")
    (journal / "t2.json.140.tmp").write_text("{half")  # the older naming
    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        assert list(journal.glob("*.tmp")) == []
    finally:
        agent.close()


def test_an_agent_that_closes_removes_what_dead_agents_left_since_it_started(
        tmp_path: Path) -> None:
    """A closing instance looks for the entries that dead instances left, as a starting one does.

    An instance killed after the last one started leaves its half-written entry for the next to look
    at; a closing one looks too (and takes its own, once it writes no more).
    """
    agent = LocalDiskAgent(tmp_path / "storage")
    other = LocalDiskAgent(tmp_path / "storage")
    journal = tmp_path / "storage" / "tasks"
    (journal / "t1.1-gone.139.tmp").write_text("{half")
    (journal / f"t2.{agent.owner}.140.tmp").write_text("{half")
    (journal / f"t3.{other.owner}.141.tmp").write_text("{half")  # alive: being written
    agent.close()
    try:
        assert sorted(p.name for p in journal.glob("*.tmp")) == [f"t3.{other.owner}.141.tmp"]
    finally:
        other.close()
    assert list(journal.glob("*.tmp")) == []


def test_an_abort_reaches_a_task_another_live_instance_runs(tmp_path: Path) -> None:
    runner = LocalDiskAgent(tmp_path / "storage", seconds_per_mib=0.2)
    other = LocalDiskAgent(tmp_path / "storage")
    try:
        runner.ensure_template("tmpl", 16 << 20)
        runner.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
        other.abort("t1")  # it cannot stop the thread itself: it leaves the request
        report = wait_for_end(runner, "t1")  # the runner's engine polls, and sees it
        assert report.result == HostResult.FAILURE and "aborted" in report.message
    finally:
        other.close()
        runner.close()


def test_clearing_a_copy_still_running_stops_it_and_leaves_no_image(tmp_path: Path) -> None:
    """The engine clears a task it gave up waiting for (an unconfirmed abort).

    The copy must not land afterwards, behind the opposite command that removed the image.
    """
    agent = LocalDiskAgent(tmp_path / "storage", seconds_per_mib=0.2)
    try:
        agent.ensure_template("tmpl", 16 << 20)
        agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
        time.sleep(0.3)
        agent.clear("t1")
        for _ in range(200):
            if "t1" not in agent._running:
                break
            time.sleep(0.01)
        assert agent.image_names() == []
        assert agent.poll(["t1"]) == {}
    finally:
        agent.close()


def test_a_journal_locked_by_a_hung_process_is_an_error_not_a_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fcntl

    import statemachines.example.vm.disk_journal as disk_journal

    monkeypatch.setattr(disk_journal, "JOURNAL_LOCK_SECONDS", 0.2)
    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        with (agent.journal / ".lock").open("a") as hung:
            fcntl.flock(hung, fcntl.LOCK_EX)
            with pytest.raises(AgentError, match=r"locked by another process for 0\.2 s"):
                agent.start("t1", "delete_image", {"image": "x"})
    finally:
        agent.close()


@pytest.mark.parametrize(("damage", "says"), [
    (lambda p: p.mkdir(), "unreadable journal file"),
    (lambda p: p.write_bytes(b"\xff\xfe{"), "unreadable journal file"),
    (lambda p: p.write_text("[" * 100_000), "corrupt journal file"),
    (lambda p: p.write_text(json.dumps({"verb": "delete_image", "parameters": {"image": "x"},
                                        "status": "running", "owner": "1-gone",
                                        "resumes": "x"})), "resumes 'x'"),
])
def test_one_damaged_journal_entry_fails_that_task_only(agent: LocalDiskAgent,
                                                         damage: Any, says: str) -> None:
    agent.start("good", "delete_image", {"image": "d"})
    wait_for_end(agent, "good")
    damage(agent.journal / "bad.json")
    answer = agent.poll(["good", "bad"])
    assert answer["good"].succeeded
    assert answer["bad"].status == HostStatus.UNKNOWN and says in answer["bad"].message
    agent.clear("bad")
    assert not (agent.journal / "bad.json").exists()


# -- cleared tasks: tombstones ----------------------------------------------------------------
DAY = 24 * 3600.0


def test_a_cleared_task_is_never_started_again(tmp_path: Path, agent: LocalDiskAgent,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """An engine with a stale view starts a task that another engine ran to its end and cleared.

    That engine had rolled it back too: the copy must not run again and recreate the image the
    rollback removed.
    """
    copy = {"source": "tmpl", "image": "d"}
    agent.start("t1", "copy_image", copy)
    assert wait_for_end(agent, "t1").succeeded
    agent.clear("t1")
    agent.image_path("d").unlink()  # the rollback's delete
    stale = LocalDiskAgent(tmp_path / "storage")  # the stale engine's own instance
    try:
        with caplog.at_level(logging.INFO, logger="endaction.agents.local_disk"):
            for starter in (agent, stale, agent):
                starter.start("t1", "copy_image", copy)  # no error: nothing to start
                # A start that runs writes the journal entry before it returns.
                assert not (agent.journal / "t1.json").exists()
                assert "t1" not in starter._running
        assert "task t1 was cleared" in caplog.text
        time.sleep(0.1)
        assert agent.image_names() == []
        assert agent.poll(["t1"]) == {} and stale.poll(["t1"]) == {}
    finally:
        stale.close()


def test_a_cleared_task_is_not_started_even_when_its_parameters_are_no_longer_valid(
    agent: LocalDiskAgent,
) -> None:
    """A rejected start is a failure in the engine's eyes; a cleared task is nothing to do."""
    agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
    wait_for_end(agent, "t1")
    agent.clear("t1")
    agent.template_path("tmpl").unlink()
    agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
    assert agent.poll(["t1"]) == {}


def test_clearing_an_unknown_task_forbids_its_start(agent: LocalDiskAgent) -> None:
    agent.clear("never-started")
    agent.start("never-started", "delete_image", {"image": "x"})
    assert agent.poll(["never-started"]) == {}
    assert not (agent.journal / "never-started.json").exists()


def test_old_tombstones_are_pruned_when_an_instance_starts(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    first = LocalDiskAgent(storage)
    backlog = [f"backlog{n}" for n in range(600)]  # more than one batch of the prune
    for task_id in ("old", "older", "recent", "fresh", *backlog):
        first.clear(task_id)
    first.close()
    cleared = storage / "tasks" / "cleared"
    now = time.time()
    for task_id, age in (("old", 7.5 * DAY), ("older", 30 * DAY), ("recent", 6.5 * DAY),
                         *((b, 8 * DAY) for b in backlog)):
        os.utime(cleared / task_id, (now - age, now - age))
    second = LocalDiskAgent(storage)  # the default bound: 7 days
    try:
        assert sorted(p.name for p in cleared.iterdir()) == ["fresh", "recent"]
        second.start("recent", "delete_image", {"image": "x"})
        assert second.poll(["recent"]) == {}, "a kept tombstone still forbids the start"
    finally:
        second.close()
    os.utime(cleared / "recent", (now - 120, now - 120))
    third = LocalDiskAgent(storage, keep_cleared_seconds=60)
    try:
        assert sorted(p.name for p in cleared.iterdir()) == ["fresh"]
    finally:
        third.close()
    with pytest.raises(ValueError, match="keep_cleared_seconds"):
        LocalDiskAgent(storage, keep_cleared_seconds=0)


def test_a_long_lived_instance_prunes_as_it_goes(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import statemachines.example.vm.local_disk as local_disk

    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        agent.clear("old")
        cleared = tmp_path / "storage" / "tasks" / "cleared"
        past = time.time() - 8 * DAY
        os.utime(cleared / "old", (past, past))
        agent.clear("new")
        assert (cleared / "old").exists(), "pruned before its hour"
        monkeypatch.setattr(local_disk, "PRUNE_EVERY_SECONDS", 0.0)
        agent.clear("newer")
        assert sorted(p.name for p in cleared.iterdir()) == ["new", "newer"]
    finally:
        agent.close()


def test_a_clear_that_stopped_half_way_still_counts(tmp_path: Path) -> None:
    """A crash between writing the tombstone and removing the entry leaves both.

    The task is cleared all the same, so its dead worker is not replaced and a start does nothing.
    """
    agent = LocalDiskAgent(tmp_path / "storage")
    try:
        entry = {"verb": "delete_image", "parameters": {"image": "x"}, "status": "running",
                 "result": None, "message": "", "owner": "1-gone", "resumes": 0}
        (agent.journal / "t1.json").write_text(json.dumps(entry))
        (agent.journal / "cleared" / "t1").touch()
        agent.start("t1", "delete_image", {"image": "x"})
        agent.poll(["t1"])
        assert "t1" not in agent._running
        assert json.loads((agent.journal / "t1.json").read_text()) == entry, "not taken over"
        agent.clear("t1")  # the engine's retry of the clear finishes it
        assert agent.poll(["t1"]) == {}
    finally:
        agent.close()


def test_a_full_disk_releases_the_reserve_to_write_a_tombstone(
    tmp_path: Path, agent: LocalDiskAgent, monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent.start("t1", "delete_image", {"image": "x"})
    wait_for_end(agent, "t1")
    real = agent.task_journal._write_tombstone
    full = {"left": 1}

    def write(task_id: str) -> None:
        if full["left"] > 0:
            full["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        real(task_id)

    monkeypatch.setattr(agent.task_journal, "_write_tombstone", write)
    agent.clear("t1")
    assert full["left"] == 0 and not (agent.journal / ".reserve").exists()
    assert (agent.journal / "cleared" / "t1").exists()
    assert not (agent.journal / "t1.json").exists()


def test_a_tombstone_that_cannot_be_written_does_not_stop_the_clear(
    agent: LocalDiskAgent, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    agent.start("t1", "delete_image", {"image": "x"})
    wait_for_end(agent, "t1")

    def write(task_id: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(agent.task_journal, "_write_tombstone", write)
    with caplog.at_level(logging.ERROR, logger="endaction.agents.local_disk"):
        agent.clear("t1")
    assert not (agent.journal / "t1.json").exists()
    assert agent.poll(["t1"]) == {}
    assert "no tombstone for cleared task t1" in caplog.text


def _read_only(paths: Callable[[Path], bool]) -> Callable[..., None]:
    """Path.unlink as on a storage remounted read-only, for the paths chosen."""
    real = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if paths(self):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real(self, missing_ok=missing_ok)

    return unlink


def test_an_idle_agent_holds_no_file_of_its_storage_open_for_writing(
        agent: LocalDiskAgent) -> None:
    """The journal's locks, held for the agent's whole life, must be read-only handles.

    The kernel refuses to remount a filesystem read-only while a file on it is open for writing:
    with write handles, an idle host's storage could never be remounted.
    """
    fdinfo = Path("/proc/self/fdinfo")
    if not fdinfo.is_dir():
        pytest.skip("needs /proc/self/fdinfo (Linux) to see how files are open")
    agent.start("t1", "copy_image", {"source": "tmpl", "image": "d"})
    wait_for_end(agent, "t1")
    storage = str(agent.storage.resolve())
    held = {}
    for info in fdinfo.iterdir():
        try:
            target = os.readlink(f"/proc/self/fd/{info.name}")
            flags = int(info.read_text().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue  # closed meanwhile
        if target.startswith(storage + os.sep):
            held[target] = flags & os.O_ACCMODE
    assert len(held) >= 2, held  # the journal's lock and this instance's owner lock
    assert all(mode == os.O_RDONLY for mode in held.values()), held


def test_a_clear_whose_entry_cannot_be_removed_is_an_agent_error_naming_the_cause(
        agent: LocalDiskAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clear whose entry cannot be removed raises an AgentError, not a raw OSError.

    A raw OSError here was a traceback in the host's log on every retry of the clear; an AgentError
    is one line there, and the engine's message names the cause.
    """
    agent.start("t1", "delete_image", {"image": "x"})
    wait_for_end(agent, "t1")
    monkeypatch.setattr(Path, "unlink", _read_only(lambda p: p.name == "t1.json"))
    with pytest.raises(AgentError, match=r"cannot clear task t1: .*Read-only file system"):
        agent.clear("t1")
    assert agent.poll(["t1"])["t1"].succeeded, "a clear that failed forgot the task"
    monkeypatch.undo()
    agent.clear("t1")  # the engine's retry, once the storage is writable again
    assert agent.poll(["t1"]) == {}


def test_an_agent_whose_owner_file_cannot_be_removed_still_closes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A host stopped while its storage is read-only must exit cleanly.

    It must not exit with a traceback from close(); the owner file it leaves is removed by the next
    instance.
    """
    first = LocalDiskAgent(tmp_path / "storage")
    owner_file = first.task_journal.owners / f"{first.owner}.lock"
    monkeypatch.setattr(Path, "unlink", _read_only(lambda p: p == owner_file))
    with caplog.at_level(logging.WARNING, logger="endaction.agents.local_disk"):
        first.close()
    assert "could not remove the owner file" in caplog.text
    assert first._owner_file.closed and owner_file.exists()
    monkeypatch.undo()
    second = LocalDiskAgent(tmp_path / "storage")
    try:
        assert [p.stem for p in second.task_journal.owners.glob("*.lock")] == [second.owner]
    finally:
        second.close()
