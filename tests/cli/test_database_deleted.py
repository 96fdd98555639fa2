"""Issue 23, item 4: the SQLite database file gone from under a running process.

The file is deleted, or replaced by another file, while a `worker` or a `demo` process runs on it.

Before, a worker kept ticking on the unlinked file through its open connections (everything it
committed afterwards vanished with the inode when it stopped), and a new connection would have made
a fresh empty database at the path. Now the process notices at its next transaction and stops: one
`Error:` line naming the file and what happened to it, exit 1, no traceback. What is persisted
elsewhere survives: the storage directory keeps its images and its `endaction-database-id` marker,
so a new database made at the same path and pointed at that storage is refused instead of taking the
old images for its leftovers and deleting them. Real processes throughout: the fault is in what a
process holds open.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from statemachines import submit_roots
from statemachines.example.vm import add_vm_parameters, vm_registry
from statemachines.example.vm.storage_agents import DATABASE_MARKER
from tests.worlds import vm_store

pytestmark = pytest.mark.slow

ROOTS = 200
#: How soon after the fault the process must have stopped: a few ticks, a lease renewal and
#: an interpreter's exit, with room for a loaded machine.
NOTICED_WITHIN = 30.0


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statemachines.cli", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _images(storage: Path) -> set[str]:
    return {path.name for path in (storage / "images").glob("*.img")}


def _wait_for_images(storage: Path, process: subprocess.Popen[str], log: Path,
                     at_least: int) -> set[str]:
    """The images on disk once the run is under way (copies made, work left)."""
    deadline = time.monotonic() + 60
    while len(found := _images(storage)) < at_least:
        assert process.poll() is None, f"it ended before the fault: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"no copies after 60 s: {log.read_text()[-2000:]}"
        time.sleep(0.02)
    return found


def _delete(db: Path, how: str, tmp_path: Path) -> None:
    """Delete the database file, or move another endaction database over it.

    `deleted` is an `rm` of the file (its -wal and -shm stay, as an `rm FILE` leaves them); any
    other `how` moves another endaction database over it (`mv other.db FILE`).
    """
    if how == "deleted":
        db.unlink()
        return
    other = tmp_path / "other.db"
    made = _cli("db", "upgrade", "--db", str(other))
    assert made.returncode == 0, made.stderr
    os.replace(other, db)


def _stopped(process: subprocess.Popen[str], log: Path, faulted_at: float) -> str:
    """The process's output, once it stopped by itself within NOTICED_WITHIN s of the fault."""
    try:
        process.wait(timeout=NOTICED_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"still running {NOTICED_WITHIN:g} s after the database file "
                             f"went: {log.read_text()[-3000:]}") from None
    print(f"stopped {time.monotonic() - faulted_at:.2f} s after the fault")
    return log.read_text()


def _check_error(output: str, returncode: int, db: Path, how: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert len(errors) == 1, output[-3000:]
    assert str(db) in errors[0] and how in errors[0], errors[0]


def _check_storage_refused(args: list[str], storage: Path, before: set[str],
                           marker: str) -> None:
    """A new database at the same path, on the same storage: refused, the files kept."""
    again = _cli(*args)
    assert again.returncode == 2, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    assert f"storage directory {storage} belongs to another database" in again.stderr, \
        again.stderr
    assert "put it back" in again.stderr, again.stderr
    assert before <= _images(storage), "images on disk were deleted"
    assert (storage / DATABASE_MARKER).read_text() == marker


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_worker_stops_when_its_database_file_goes(tmp_path: Path, how: str) -> None:
    db, storage, log_path = tmp_path / "fleet.db", tmp_path / "storage", tmp_path / "w.log"
    store = vm_store(str(db))
    try:  # copies that all succeed: no image is ever deleted, so every one must survive
        submit_roots(store, vm_registry(), [
            ("AddVmFromTemplate", add_vm_parameters(
                f"vm{i}", ["template-disk0", "template-disk1"], [])) for i in range(ROOTS)])
    finally:
        store.dispose()
    worker_args = ["worker", "--db", str(db), "--storage", str(storage), "--interval", "0.2",
                   "--max-roots", "2", "--agent-option", "templates=2"]
    log: IO[str]
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "statemachines.cli", *worker_args,
                                   "-v"], stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_for_images(storage, worker, log_path, at_least=4)
            marker = (storage / DATABASE_MARKER).read_text()
            _delete(db, how, tmp_path)
            faulted_at = time.monotonic()
            before = _images(storage)
            output = _stopped(worker, log_path, faulted_at)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    _check_error(output, worker.returncode, db, how)
    assert len(before) < 2 * ROOTS, "the worker had finished before the fault: not mid-run"
    assert before <= _images(storage), "images on disk were deleted"
    if how == "deleted":
        assert not db.exists(), "a new database file was made at the deleted one's path"
    _check_storage_refused(worker_args, storage, before, marker)


def test_a_demo_stops_when_its_database_file_is_deleted(tmp_path: Path) -> None:
    db, storage, log_path = tmp_path / "demo.db", tmp_path / "storage", tmp_path / "demo.log"
    demo_args = ["demo", "--images", "60", "--db", str(db), "--storage", str(storage)]
    with log_path.open("w") as log:
        demo = subprocess.Popen([sys.executable, "-m", "statemachines.cli", *demo_args],
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_for_images(storage, demo, log_path, at_least=1)
            marker = (storage / DATABASE_MARKER).read_text()
            db.unlink()
            faulted_at = time.monotonic()
            before = _images(storage)
            output = _stopped(demo, log_path, faulted_at)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
    _check_error(output, demo.returncode, db, "deleted")
    assert not db.exists(), "a new database file was made at the deleted one's path"
    assert before <= _images(storage), "images on disk were deleted"
    _check_storage_refused(["demo", "--images", "3", "--db", str(db), "--storage",
                            str(storage)], storage, before, marker)
