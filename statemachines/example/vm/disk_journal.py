"""The local-disk host's task journal: one file per task, written atomically, under one lock.

Every task the host runs has an entry under `<storage>/tasks/`, so a host that restarts finds
the tasks that finished while it was down. The entry names the agent instance that runs the
task; an instance holds an exclusive lock on its own file under `tasks/owners/` for as long
as it lives, so "is its owner alive?" is answered by the kernel, not by a hostname or a
process id that a restarted container or a recycled pid would fake. Starting a task and
taking one over happen under a lock on the journal directory, so two processes never run the
same task.

Clearing a task leaves a tombstone, an empty file under `tasks/cleared/`, and a task with one
is never started again: an engine whose view of the database is stale may still ask to start
a task that another engine ran to its end, rolled back and cleared, and running it would
bring back an image that the rollback already accounted for. Tombstones older than
`keep_cleared_seconds` are pruned.

The disk filling up must not hang anyone: the journal keeps a small reserve file and gives it
up when a write fails for lack of space, so that the outcome of a failed copy, and the deletes
that free the space, can still be recorded.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from statemachines import AgentError, TaskRejected

log = logging.getLogger("endaction.agents.local_disk")

RESERVE_NAME = ".reserve"
RESERVE_BYTES = 1 << 20
LOCK_NAME = ".lock"
CLEARED_FOLDER = "cleared"
# Tombstones removed per hold of the journal lock when pruning.
PRUNE_BATCH = 256
# A week: far longer than any engine's view of the database can stay stale (a view that old
# would be a process frozen for days and then resumed), yet short enough that the tombstones
# of a busy host stay a modest folder.
KEEP_CLEARED_SECONDS = 7 * 24 * 3600.0
# How long a caller waits for another process to release the journal lock.
JOURNAL_LOCK_SECONDS = 10.0
# Owners of the agents of this process that are still open: their running tasks are alive
# even though this process's own lock on their owner file does not exclude itself.
LIVE_OWNERS: set[str] = set()


class JournalBusy(AgentError):
    """Another process has held the journal's lock for longer than it may."""


class DiskJournal:
    """The task journal of one local-disk agent instance (`owner`) in `storage/tasks`.

    Args:
        storage: the storage directory; the journal is its `tasks` folder.
        owner: the name of the instance that writes through this journal.
        keep_cleared_seconds: how long a tombstone forbids starting its task again.
    """

    def __init__(self, storage: Path, owner: str, keep_cleared_seconds: float) -> None:
        self.storage = storage
        self.folder = storage / "tasks"
        self.owners = self.folder / "owners"
        self.cleared = self.folder / CLEARED_FOLDER
        for folder in (self.folder, self.owners, self.cleared):
            folder.mkdir(parents=True, exist_ok=True)
        self.owner = owner
        self.keep_cleared_seconds = keep_cleared_seconds
        self._dir_lock = open_for_lock(self.folder / LOCK_NAME)
        self._lock = threading.RLock()
        self._lock_depth = 0

    def close(self) -> None:
        """Close the journal's lock file, which lets go of any hold on it."""
        self._dir_lock.close()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """This process's threads, then other processes: one at a time in the journal.

        Re-entrant: only the outermost holder takes and releases the file lock, which a
        nested release would otherwise drop while the outer holder still relies on it.
        """
        with self._lock:
            if self._lock_depth == 0:
                self._lock_directory()
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    fcntl.flock(self._dir_lock, fcntl.LOCK_UN)

    def _lock_directory(self) -> None:
        """Wait for another process's hold on the journal, but not forever.

        One that hangs while holding it must cost an error (`JournalBusy`), not every caller's
        progress.
        """
        deadline = time.monotonic() + JOURNAL_LOCK_SECONDS
        while True:
            try:
                fcntl.flock(self._dir_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise JournalBusy(f"the task journal in {self.folder} has been locked by "
                                      f"another process for {JOURNAL_LOCK_SECONDS:g} s") from None
                time.sleep(0.01)

    def path(self, task_id: str) -> Path:
        """The file of the task's journal entry.

        A task id that is not a plain file name is rejected for good (`TaskRejected`): it
        could name a file outside the journal.
        """
        if not safe_name(task_id):
            raise TaskRejected(f"task id {task_id!r} is not a plain name")
        return self.folder / f"{task_id}.json"

    def tombstone_path(self, task_id: str) -> Path:
        """The file of the task's tombstone, in a folder of its own.

        There no task id can make it a journal entry, a temporary file or the lock, and
        pruning lists tombstones only.
        """
        if not safe_name(task_id):
            raise TaskRejected(f"task id {task_id!r} is not a plain name")
        return self.cleared / task_id

    def is_cleared(self, task_id: str) -> bool:
        """Whether the task has a tombstone: it was cleared, and must never start again.

        Only an engine with a stale view asks to start such a task, so the ask is logged.
        """
        if not self.tombstone_path(task_id).exists():
            return False
        log.warning("task %s was cleared, yet asked to start again (by an engine with a stale "
                    "view?): not started", task_id)
        return True

    def leave_tombstone(self, task_id: str) -> None:
        """Leave the task's tombstone, so that it is never started again.

        On a full disk, give up the reserve and retry, as a journal write does; if even that
        fails, the clear goes on without one (logged).

        Refusing the clear instead would be worse: the engine would retry it at every tick
        on a disk that is still full, the entry it wants gone would stay, and the rollback
        waiting for it would stall. Without the tombstone the task is only as exposed as it
        was before tombstones: it runs again only if a stale engine starts it.
        """
        try:
            try:
                self._write_tombstone(task_id)
            except OSError as err:
                if err.errno != errno.ENOSPC or not self.release_reserve():
                    raise
                self._write_tombstone(task_id)
        except OSError as err:
            log.error("no tombstone for cleared task %s in %s (%s): an engine with a stale view "
                      "could start it again", task_id, self.cleared, err)

    def _write_tombstone(self, task_id: str) -> None:
        """Write the tombstone: an empty file, created whole or not at all.

        Clearing again renews its time, so the last clear is the one its age counts from.
        """
        self.tombstone_path(task_id).touch()

    def prune_tombstones(self) -> None:
        """Remove the tombstones older than `keep_cleared_seconds`.

        The folder is listed without the journal lock, so that a big one delays no other
        process; each old tombstone is looked at again under the lock before it goes, since a
        clear may have just renewed it. A batch at a time: a backlog (an instance started after
        a long pause) must not hold the lock long enough to make starts time out.
        """
        horizon = time.time() - self.keep_cleared_seconds
        try:
            with os.scandir(self.cleared) as entries:
                old = [Path(item.path) for item in entries
                       if not item.is_dir(follow_symlinks=False)
                       and _mtime(item.path) < horizon]
        except OSError as err:
            log.warning("could not prune the tombstones in %s: %s", self.cleared, err)
            return
        pruned = 0
        for first in range(0, len(old), PRUNE_BATCH):
            with self.locked():
                for path in old[first:first + PRUNE_BATCH]:
                    try:
                        if _mtime(path) < horizon:
                            path.unlink()
                            pruned += 1
                    except OSError as err:  # gone already (another instance pruned it) or stuck
                        if err.errno != errno.ENOENT:
                            log.warning("could not prune the tombstone %s: %s", path, err)
        if pruned:
            log.info("pruned %d tombstones of tasks cleared over %g s ago from %s", pruned,
                     self.keep_cleared_seconds, self.cleared)

    def read(self, task_id: str) -> dict[str, Any] | None:
        """The task's entry; AgentError, for this task alone, whatever is wrong with it."""
        try:
            text = self.path(task_id).read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            raise AgentError(f"unreadable journal file for task {task_id}: {err}") from err
        try:
            entry = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise AgentError(f"corrupt journal file for task {task_id}: {err}") from err
        if not isinstance(entry, dict):
            raise AgentError(f"corrupt journal file for task {task_id}: not an object")
        return entry

    def write(self, task_id: str, entry: Mapping[str, Any]) -> None:
        """Atomically (write, then rename); on a full disk, give up the reserve and retry."""
        try:
            self._write_atomically(task_id, entry)
        except OSError as err:
            if err.errno != errno.ENOSPC or not self.release_reserve():
                raise
            self._write_atomically(task_id, entry)

    def _write_atomically(self, task_id: str, entry: Mapping[str, Any]) -> None:
        path = self.path(task_id)
        tmp = path.with_name(f"{task_id}.{self.owner}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(entry))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def keep_reserve(self) -> None:
        """A reserve file the journal can give up when the disk is full (see the module)."""
        reserve = self.folder / RESERVE_NAME
        try:
            if reserve.exists() and reserve.stat().st_size >= RESERVE_BYTES:
                return
            with reserve.open("wb") as out:
                out.write(b"\0" * RESERVE_BYTES)
        except OSError as err:
            reserve.unlink(missing_ok=True)
            log.warning("no journal reserve in %s (%s): a full disk may leave task outcomes "
                        "unrecorded", self.folder, err)

    def release_reserve(self) -> bool:
        """Delete the reserve file, so that a write on a full disk can be retried.

        False if there was none to give up. It is logged as an error: the storage is full, and
        the reserve stays gone until `keep_reserve` writes it again.
        """
        reserve = self.folder / RESERVE_NAME
        if not reserve.exists():
            return False
        reserve.unlink()
        log.error("the storage in %s is full: released the journal reserve so that task "
                  "outcomes can still be recorded", self.storage)
        return True

    # -- owners ---------------------------------------------------------------------------
    def hold_owner_lock(self) -> IO[str]:
        """Lock this instance's owner file; the handle holds the lock until it is closed.

        It is done under the journal lock: another instance removing dead owners' files must
        never see this one's file between its creation and its lock, and take it for dead.
        """
        with self.locked():
            handle = open_for_lock(self.owners / f"{self.owner}.lock")
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle

    def owner_alive(self, owner: str) -> bool:
        """Whether `owner` is alive: it is while its instance holds the lock on its owner file.

        The kernel releases that lock when the process dies, whatever its hostname or pid says.
        The owners of this process's open agents (`LIVE_OWNERS`) are alive too.
        """
        if owner in LIVE_OWNERS:
            return True
        path = self.owners / f"{owner}.lock"
        if "/" in owner or not path.exists():
            return False
        try:
            with path.open("r") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def remove_orphans(self, mine_too: bool = False) -> None:
        """Remove the half-written journal entries and owner files dead instances left behind.

        With `mine_too`, this instance's own half-written entries go too, once it has stopped
        writing.
        """
        with self.locked():
            for tmp in self.folder.glob("*.tmp"):
                parts = tmp.name.rsplit(".", 3)  # task id, owner, thread, "tmp"
                owner = parts[1] if len(parts) == 4 else ""
                if not owner or (mine_too and owner == self.owner) \
                        or not self.owner_alive(owner):
                    tmp.unlink(missing_ok=True)
            for lock in self.owners.glob("*.lock"):
                if lock.stem != self.owner and not self.owner_alive(lock.stem):
                    lock.unlink(missing_ok=True)


def open_for_lock(path: Path) -> IO[str]:
    """Open a lock file, made if missing, yet held read-only.

    flock needs no write access, and a host that kept a file open for writing for its whole
    life would make its storage impossible to remount read-only (the kernel refuses while a
    writer is open: "mount point is busy").
    """
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644), "r")


def _mtime(path: str | Path) -> float:
    """Of the path itself; one that vanished meanwhile is never old."""
    try:
        return os.stat(path, follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return float("inf")


def safe_name(name: str) -> bool:
    """A plain file name: no path, no NUL, and short enough for any file system."""
    return (bool(name) and len(name.encode("utf-8", "surrogatepass")) <= 200
            and not any(c in name for c in "/\\\x00") and name not in (".", ".."))
