"""The storage host on a storage filesystem that fills up or turns read-only under it.

The host runs as its own process (`endaction agent serve`), judged from the database and the files
(issue 23).

- Full: every copy fails with "No space left on device", the root is rolled back and names that
  cause (in the report and in `endaction status --json`), the host stays up and answers health, its
  log is lines, not tracebacks; two runs in a row leave nothing on disk or in the inventory, and
  every command ended once.
- Read-only mid-run: the copies are done when the storage is remounted read-only, so their rollback
  cannot delete them. The engine still ends (exit 3: something is left behind) and forgets nothing:
  every image file on disk is a revert_failed resource in the database and a leftover in the report,
  and each RemoveImage names "Read-only file system". The host stops cleanly while read-only, its
  journal is intact, and once the storage is writable again a restarted host and `endaction cleanup`
  through it leave nothing, every command ended once.

Each test mounts a real, small tmpfs (root only: they skip, saying so, where mounting is not
allowed).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from statemachines.core.records.revert_state import RevertState
from tests.cli.fleet import ends_once
from tests.cli.hosts import Host
from tests.cli.judge import judge
from tests.worlds import images_in, vm_store

pytestmark = pytest.mark.slow

ENOSPC_TEXT = "No space left on device"
EROFS_TEXT = "Read-only file system"
# One warning line per refused request, and the engine's retries are bounded: a log past this
# is a flood (a traceback per retry made a read-only run write over 300 KB).
HOST_LOG_LIMIT = 256 << 10


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """A factory of real tmpfs mounts of a given size.

    Each is unmounted at the end (made writable again first), even when the test failed with the
    storage read-only.
    """
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"storage-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(point)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"mounting a small tmpfs needs root: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["mount", "-o", "remount,rw", str(point)], capture_output=True,
                       check=False)
        if subprocess.run(["umount", str(point)], capture_output=True,
                          check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def _cli(host: Host, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """An engine command through the host, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "statemachines.cli", *args, "--agent-url", host.url,
         "--agent-token-file", str(host.token_file)],
        capture_output=True, text=True, timeout=timeout, check=False)


def _judged(db: Path, storage: Path) -> list[str]:
    store = vm_store(str(db), create=False)
    try:
        return judge(store, storage) + ends_once(store)
    finally:
        store.dispose()


def _image_files(storage: Path) -> set[str]:
    return {path.stem for path in (storage / "images").glob("*.img")}


def _journal_is_whole(storage: Path) -> list[str]:
    """Journal entries that are not a JSON object: what a write cut short would leave."""
    bad = []
    for path in (storage / "tasks").glob("*.json"):
        try:
            if not isinstance(json.loads(path.read_text()), dict):
                bad.append(f"{path.name}: not an object")
        except ValueError as err:
            bad.append(f"{path.name}: {err}")
    return bad


def _no_flood(host: Host) -> None:
    log = host.stderr()
    assert "Traceback" not in log, log[-3000:]
    assert len(log.encode()) < HOST_LOG_LIMIT, f"host log of {len(log)} chars: {log[-2000:]}"


def test_a_full_storage_under_the_host_rolls_back_and_leaves_nothing(
        tmp_path: Path, tmpfs: Callable[[str], Path]) -> None:
    """No copy fits: 3 templates of 2 MiB and the 1 MiB journal reserve fill 7 of its 7.5 MiB.

    Run twice: the second run finds the host as the first left it, nothing piled up.
    """
    storage = tmpfs("7680k")
    db = tmp_path / "e.db"
    host = Host(storage, logs=tmp_path)
    host.start()
    try:
        for _ in range(2):
            demo = _cli(host, "demo", "--images", "3", "--db", str(db), "--json")
            assert demo.returncode == 5, demo.stderr[-3000:]  # failed, rolled back clean
            assert "Traceback" not in demo.stderr, demo.stderr[-3000:]
            report: dict[str, Any] = json.loads(demo.stdout)
            assert report["root"]["status"] == "ended_failure"
            assert ENOSPC_TEXT in (report["root"]["error"] or ""), report["root"]
            copies = [t for t in report["tasks"] if t["verb"] == "copy_image"]
            assert len(copies) == 3
            assert all(ENOSPC_TEXT in (t["message"] or "") for t in copies), copies
            assert report["leftovers"] == [] and report["images_on_disk"] == []
            assert host.healthy(), "the host stopped answering on a full storage"
        status = subprocess.run(
            [sys.executable, "-m", "statemachines.cli", "status", "--db", str(db), "--json"],
            capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stderr[-2000:]
        assert ENOSPC_TEXT in json.loads(status.stdout)["command"]["error"]
        _no_flood(host)
        assert "released the journal reserve" in host.stderr()
    finally:
        stopped = host.stop()
    assert stopped == 0, host.stderr()[-2000:]
    assert _image_files(storage) == set()
    assert _judged(db, storage) == []


def test_a_storage_turned_read_only_mid_run_forgets_nothing_and_cleans_up_after(
        tmp_path: Path, tmpfs: Callable[[str], Path]) -> None:
    """The read-only remount can only come between the copies and their rollback.

    The kernel refuses a read-only remount while a file is open for writing ("mount point is busy").
    The engine is frozen (SIGSTOP) once all the copies run, the remount is retried until the host
    has closed every image, then the engine goes on and every delete meets a read-only storage.
    """
    storage = tmpfs("64m")
    db = tmp_path / "e.db"
    host = Host(storage, "--workers", "4", "--seconds-per-mib", "1", logs=tmp_path)
    host.start()
    demo_out, demo_err = tmp_path / "demo.out", tmp_path / "demo.err"
    demo: subprocess.Popen[str] | None = None
    try:
        with demo_out.open("w") as out, demo_err.open("w") as err:
            demo = subprocess.Popen(
                [sys.executable, "-m", "statemachines.cli", "demo", "--images", "4",
                 "--fail", "1", "--db", str(db), "--agent-url", host.url,
                 "--agent-token-file", str(host.token_file), "--json",
                 "--task-timeout", "120"], stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + 30
        while len(_image_files(storage)) < 4:  # every copy under way: none starts after
            assert demo.poll() is None, demo_err.read_text()[-3000:]
            assert time.monotonic() < deadline, "the copies did not all start within 30 s"
            time.sleep(0.02)
        demo.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while subprocess.run(["mount", "-o", "remount,ro", str(storage)],
                             capture_output=True, check=False).returncode != 0:
            assert time.monotonic() < deadline, "the storage never became free to remount"
            time.sleep(0.01)
        on_disk = _image_files(storage)
        assert len(on_disk) == 4, on_disk  # three whole copies and the failed one's half
        demo.send_signal(signal.SIGCONT)
        code = demo.wait(timeout=120)
        assert code == 3, demo_err.read_text()[-3000:]  # something is left behind
        assert "Traceback" not in demo_err.read_text()
        report: dict[str, Any] = json.loads(demo_out.read_text())
        assert report["root"]["status"] == "rollback_failed", report["root"]
        removes = [c for c in report["commands"] if c["type"] == "RemoveImage"]
        assert removes and all(EROFS_TEXT in (c["error"] or "") for c in removes), removes
        # Nothing forgotten: every file is a revert_failed resource and a leftover.
        store = vm_store(str(db), create=False)
        try:
            failed = {r.resource.id for r in store.reverts()
                      if r.state == RevertState.REVERT_FAILED}
            inventory = {row.id for row in images_in(store)}
        finally:
            store.dispose()
        assert _image_files(storage) == on_disk
        assert on_disk <= failed, on_disk - failed
        assert on_disk <= inventory and on_disk <= set(report["leftovers"]), report["leftovers"]
        assert host.healthy(), "the host stopped answering on a read-only storage"
        _no_flood(host)
        # It stops cleanly while its storage is read-only, and its journal is whole.
        stopped = host.stop()
        assert stopped == 0, host.stderr()[-3000:]
        assert "Traceback" not in host.stderr() and "local-disk host stopped" in host.stderr()
        assert _journal_is_whole(storage) == []
        subprocess.run(["mount", "-o", "remount,rw", str(storage)], check=True)
        host.start()
        assert host.healthy()
        assert "Traceback" not in host.stderr() and "corrupt" not in host.stderr()
        owners = list((storage / "tasks" / "owners").glob("*.lock"))
        assert len(owners) == 1, f"dead instances' owner files stayed: {owners}"
        cleanup = _cli(host, "cleanup", "--db", str(db), "--json")
        assert cleanup.returncode == 0, cleanup.stderr[-3000:]
        cleaned: dict[str, Any] = json.loads(cleanup.stdout)
        assert cleaned["still_failed"] == [] and cleaned["leftovers"] == [], cleaned
        _no_flood(host)
    finally:
        if demo is not None and demo.poll() is None:
            demo.send_signal(signal.SIGCONT)
            demo.kill()
            demo.wait(timeout=30)
        stopped = host.stop()
    assert stopped == 0, host.stderr()[-2000:]
    assert _image_files(storage) == set()
    assert _judged(db, storage) == []
