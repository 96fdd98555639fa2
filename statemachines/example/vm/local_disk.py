"""A storage agent whose images are real files, copied by background worker threads.

Every task has a journal file under `<storage>/tasks/`, written atomically, so an engine that
restarts finds the tasks that finished while it was down. The journal names the agent instance
that runs each task; an instance holds an exclusive lock on its own file under
`tasks/owners/` for as long as it lives, so "is its owner alive?" is answered by the kernel,
not by a hostname or a process id that a restarted container or a recycled pid would fake.

A task whose owner died is *resumed*: the new instance takes it over and runs it again from
the start. Both verbs are idempotent (a copy rewrites the whole image, a delete of a missing
file succeeds), so a crash costs time, never a failure; only after `max_resumes` takeovers is
the task reported `unknown`. Starting a task and taking one over happen under a lock on the
journal directory, so two processes never run the same task.

The disk filling up must not hang anyone. The agent keeps a small reserve file in the journal
directory and gives it up when a journal write fails for lack of space, so that the outcome of
a failed copy, and the deletes that free the space, can still be recorded; an outcome that
cannot be written even then is kept in memory and reported with that fact, and a start whose
journal entry cannot be written is refused with the reason.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from statemachines import AgentError, HostResult, HostStatus, TaskRejected, TaskReport

from .verbs import COPY_VERB, DELETE_VERB

log = logging.getLogger("endaction.agents.local_disk")

CHUNK = 1 << 20
IMAGE_SUFFIX = ".img"
RESERVE_NAME = ".reserve"
RESERVE_BYTES = 1 << 20
LOCK_NAME = ".lock"
# How long a caller waits for another process to release the journal lock.
JOURNAL_LOCK_SECONDS = 10.0
# Owners of the agents of this process that are still open: their running tasks are alive
# even though this process's own lock on their owner file does not exclude itself.
_LIVE_OWNERS: set[str] = set()


class JournalBusy(AgentError):
    """Another process has held the journal's lock for longer than it may."""


class _Aborted(Exception):
    """The engine asked for this task to stop."""


class LocalDiskAgent:
    """The storage host of the demo: images are files under `storage/images`.

    Args:
        storage: the storage directory (templates, images and the task journal).
        workers: copies and deletes run at once.
        seconds_per_mib: slows copies down so that a person can watch them.
        max_resumes: takeovers of a task whose worker died, before it is reported `unknown`.
        failing_deletes: images whose deletes fail: a compensation fault, for the demo's
            `--fail-rollback` (it lives in this process only, so another process's cleanup
            finds the fault gone).
    """

    def __init__(self, storage: Path | str, workers: int = 4, seconds_per_mib: float = 0.0,
                 max_resumes: int = 3, failing_deletes: Iterable[str] = ()) -> None:
        self.storage = Path(storage)
        self.templates = self.storage / "templates"
        self.images = self.storage / "images"
        self.journal = self.storage / "tasks"
        self.owners = self.journal / "owners"
        for folder in (self.templates, self.images, self.journal, self.owners):
            folder.mkdir(parents=True, exist_ok=True)
        self.seconds_per_mib = seconds_per_mib
        self.max_resumes = max_resumes
        self.failing_deletes = frozenset(failing_deletes)
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._dir_lock = (self.journal / LOCK_NAME).open("a")
        self._lock = threading.RLock()
        self._lock_depth = 0
        self._owner_file = self._hold_owner_lock()
        self._closing = False
        self._running: dict[str, threading.Event] = {}
        self._unjournaled: dict[str, dict[str, Any]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="local-disk-agent")
        _LIVE_OWNERS.add(self.owner)
        self._remove_orphans()
        self._keep_reserve()

    # -- protocol -------------------------------------------------------------------------
    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        if verb not in (COPY_VERB, DELETE_VERB):
            raise TaskRejected(f"local-disk agent has no verb {verb!r}")
        image = parameters.get("image")
        if not isinstance(image, str) or not _safe_name(image):
            raise TaskRejected(f"task {task_id}: parameter 'image' must be a plain file name")
        if verb == COPY_VERB:
            source = parameters.get("source")
            if not isinstance(source, str) or not _safe_name(source):
                raise TaskRejected(f"task {task_id}: parameter 'source' must be a plain file name")
            if not self.template_path(source).is_file():
                raise TaskRejected(
                    f"task {task_id}: no template image {source!r} in {self.templates}")
        with self._journal_locked():
            entry = self._read_journal(task_id)
            if entry is not None:
                self._take_over_if_orphaned(task_id, entry)
                return
            entry = {"verb": verb, "parameters": dict(parameters), "status": HostStatus.RUNNING,
                     "result": None, "message": "", "owner": self.owner, "resumes": 0}
            try:
                self._write_journal(task_id, entry)
            except OSError as err:
                raise AgentError(f"cannot write the task journal in {self.journal}: {err}") \
                    from err
            self._launch(task_id, entry)

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        answer: dict[str, TaskReport] = {}
        for task_id in task_ids:
            try:
                report = self._report(task_id)
            except JournalBusy:
                raise  # the whole journal, not this task: the poll failed, and is retried
            except AgentError as err:
                # One unreadable journal file must not hide the other tasks' answers.
                report = TaskReport.unknown(str(err))
            if report is not None:
                answer[task_id] = report
        return answer

    def clear(self, task_id: str) -> None:
        """Forget the task. One still running here (the engine gave up waiting for it) is
        stopped, and a copy's output is removed: nobody accounts for it any more."""
        with self._journal_locked():  # a worker finishing now must not write the entry back
            path = self._journal_path(task_id)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)  # not an entry this agent wrote, but in its place
            else:
                path.unlink(missing_ok=True)
            self._unjournaled.pop(task_id, None)
            stop = self._running.get(task_id)
            if stop is not None:
                stop.set()

    def abort(self, task_id: str) -> None:
        """Stop a copy or delete this instance runs; a task whose owner died ends at once."""
        with self._journal_locked():
            stop = self._running.get(task_id)
            if stop is not None:
                stop.set()
                return
            entry = self._read_journal(task_id)
            if entry is None or entry.get("status") != HostStatus.RUNNING:
                return
            if not self._owner_alive(str(entry.get("owner"))):
                self._finish_entry(task_id, entry, HostResult.FAILURE,
                                   "aborted: its worker had died")
            elif not entry.get("abort_requested"):
                # Another live instance runs it: it sees the request when its engine polls.
                entry["abort_requested"] = True
                self._record(task_id, entry)

    def close(self) -> None:
        """Stop the workers; a task still running stays journaled as running, and the next
        instance resumes it (its owner is gone), as after a crash."""
        self._closing = True
        for stop in list(self._running.values()):
            stop.set()
        self._pool.shutdown(wait=True)
        _LIVE_OWNERS.discard(self.owner)
        self._dir_lock.close()
        (self.owners / f"{self.owner}.lock").unlink(missing_ok=True)
        self._owner_file.close()

    # -- storage ----------------------------------------------------------------------------
    def template_path(self, name: str) -> Path:
        return self.templates / f"{name}{IMAGE_SUFFIX}"

    def image_path(self, name: str) -> Path:
        return self.images / f"{name}{IMAGE_SUFFIX}"

    def image_names(self) -> list[str]:
        return sorted(p.name[: -len(IMAGE_SUFFIX)] for p in self.images.glob(f"*{IMAGE_SUFFIX}"))

    def ensure_template(self, name: str, size: int) -> None:
        path = self.template_path(name)
        if path.is_file() and path.stat().st_size == size:
            return
        block = (name.encode() * (CHUNK // max(1, len(name)) + 1))[:CHUNK]
        with path.open("wb") as out:
            left = size
            while left > 0:
                out.write(block[: min(left, CHUNK)])
                left -= CHUNK

    # -- reports and takeovers --------------------------------------------------------------
    def _report(self, task_id: str) -> TaskReport | None:
        kept = self._unjournaled.get(task_id)
        if kept is not None:
            return _as_report(task_id, kept)
        entry = self._read_journal(task_id)
        if entry is None:
            return None
        stop = self._running.get(task_id)
        if stop is not None and entry.get("abort_requested"):
            stop.set()  # another process's engine asked for it
        if entry.get("status") == HostStatus.RUNNING and task_id not in self._running \
                and not self._owner_alive(str(entry.get("owner"))):
            with self._journal_locked():
                entry = self._read_journal(task_id)
                if entry is None:
                    return None
                self._take_over_if_orphaned(task_id, entry)
        return _as_report(task_id, self._unjournaled.get(task_id, entry))

    def _take_over_if_orphaned(self, task_id: str, entry: dict[str, Any]) -> None:
        """Run again a task journaled as running by an owner that is gone (journal lock held)."""
        if entry.get("status") != HostStatus.RUNNING or task_id in self._running:
            return
        owner = str(entry.get("owner"))
        if self._owner_alive(owner):
            return
        resumes = entry.get("resumes") or 0
        if not isinstance(resumes, int):
            raise AgentError(f"corrupt journal file for task {task_id}: resumes {resumes!r}")
        if resumes >= self.max_resumes:
            entry.update(status=HostStatus.UNKNOWN, result=HostResult.UNKNOWN,
                         message=f"task {task_id} lost its worker {resumes + 1} times "
                                 f"(last: {owner}); not resumed again")
            self._record(task_id, entry)
            return
        entry.update(owner=self.owner, resumes=resumes + 1,
                     message=f"resumed after its worker {owner} died")
        try:
            self._write_journal(task_id, entry)
        except OSError as err:
            log.error("cannot take over task %s: %s", task_id, err)
            return  # the next poll tries again; nothing runs it meanwhile
        log.warning("task %s: its worker %s is gone; running it again (resume %d of %d)",
                    task_id, owner, resumes + 1, self.max_resumes)
        self._launch(task_id, entry)

    def _launch(self, task_id: str, entry: Mapping[str, Any]) -> None:
        stop = threading.Event()
        self._running[task_id] = stop
        self._pool.submit(self._run, task_id, str(entry.get("verb")),
                          dict(entry.get("parameters") or {}), stop)

    # -- workers ----------------------------------------------------------------------------
    def _run(self, task_id: str, verb: str, parameters: dict[str, Any],
             stop: threading.Event) -> None:
        try:
            if verb == COPY_VERB:
                self._copy(parameters, stop)
            else:
                self._delete(parameters, stop)
            result, message = HostResult.SUCCESS, ""
        except _Aborted:
            if self._closing:
                self._running.pop(task_id, None)
                return  # not an outcome: the next instance resumes it
            result, message = HostResult.FAILURE, "aborted at the engine's request"
        except Exception as err:  # the worker must report every outcome, whatever failed
            result, message = HostResult.FAILURE, f"{type(err).__name__}: {err}"
        try:
            with self._journal_locked():
                self._running.pop(task_id, None)
                entry = self._read_journal(task_id)
                if entry is None:
                    # Cleared while running: the engine ended it without this answer, and may
                    # have removed the image already; a copy must not leave one behind.
                    if verb == COPY_VERB and "image" in parameters:
                        self.image_path(str(parameters["image"])).unlink(missing_ok=True)
                    return
                self._finish_entry(task_id, entry, result, message)
        except Exception as err:
            log.exception("task %s: could not record its end", task_id)
            self._unjournaled[task_id] = {
                "status": HostStatus.FINISHED, "result": result,
                "message": f"{message} (the journal could not record this: {err})".strip()}

    def _finish_entry(self, task_id: str, entry: dict[str, Any], result: HostResult,
                      message: str) -> None:
        entry.update(status=HostStatus.FINISHED, result=result, message=message)
        self._record(task_id, entry)
        if result == HostResult.SUCCESS and entry.get("verb") == DELETE_VERB:
            self._keep_reserve()  # space came back: take the reserve up again

    def _record(self, task_id: str, entry: dict[str, Any]) -> None:
        """Write an outcome; if even that fails, keep it in memory and say so when polled."""
        try:
            self._write_journal(task_id, entry)
        except OSError as err:
            log.error("task %s: the journal could not record its end: %s", task_id, err)
            kept = dict(entry)
            kept["message"] = (f"{entry.get('message') or ''} (the journal in {self.journal} "
                               f"could not record this: {err})").strip()
            self._unjournaled[task_id] = kept

    def _copy(self, parameters: Mapping[str, Any], stop: threading.Event) -> None:
        source = self.template_path(parameters["source"])
        target = self.image_path(parameters["image"])
        size = source.stat().st_size
        fail_at = size // 2 if parameters.get("inject_failure") else None
        copied = 0
        if stop.is_set():
            raise _Aborted  # aborted while queued: never create the image at all
        with source.open("rb") as src, target.open("wb") as dst:
            while chunk := src.read(CHUNK):
                if stop.is_set():
                    raise _Aborted
                if fail_at is not None and copied + len(chunk) > fail_at:
                    dst.write(chunk[: fail_at - copied])
                    raise OSError(f"injected failure after {fail_at} bytes of {size}")
                dst.write(chunk)
                copied += len(chunk)
                if self.seconds_per_mib:
                    time.sleep(self.seconds_per_mib * len(chunk) / CHUNK)

    def _delete(self, parameters: Mapping[str, Any], stop: threading.Event) -> None:
        if stop.is_set():
            raise _Aborted
        image = str(parameters["image"])
        if image in self.failing_deletes:
            raise OSError(f"injected failure: deleting {image} fails in this process")
        self.image_path(image).unlink(missing_ok=True)

    # -- journal ------------------------------------------------------------------------------
    @contextmanager
    def _journal_locked(self) -> Iterator[None]:
        """This process's threads, then other processes: one at a time in the journal.

        Re-entrant: only the outermost holder takes and releases the file lock, which a
        nested release would otherwise drop while the outer holder still relies on it."""
        with self._lock:
            if self._lock_depth == 0:
                self._lock_journal_directory()
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    fcntl.flock(self._dir_lock, fcntl.LOCK_UN)

    def _lock_journal_directory(self) -> None:
        """Wait for another process's hold on the journal, but not forever: one that hangs
        while holding it must cost an error, not every caller's progress."""
        deadline = time.monotonic() + JOURNAL_LOCK_SECONDS
        while True:
            try:
                fcntl.flock(self._dir_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise JournalBusy(f"the task journal in {self.journal} has been locked by "
                                      f"another process for {JOURNAL_LOCK_SECONDS:g} s") from None
                time.sleep(0.01)

    def _journal_path(self, task_id: str) -> Path:
        if not _safe_name(task_id):
            raise TaskRejected(f"task id {task_id!r} is not a plain name")
        return self.journal / f"{task_id}.json"

    def _read_journal(self, task_id: str) -> dict[str, Any] | None:
        """The task's entry; AgentError, for this task alone, whatever is wrong with it."""
        try:
            text = self._journal_path(task_id).read_text()
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

    def _write_journal(self, task_id: str, entry: Mapping[str, Any]) -> None:
        """Atomically (write, then rename); on a full disk, give up the reserve and retry."""
        try:
            self._write_atomically(task_id, entry)
        except OSError as err:
            if err.errno != errno.ENOSPC or not self._release_reserve():
                raise
            self._write_atomically(task_id, entry)

    def _write_atomically(self, task_id: str, entry: Mapping[str, Any]) -> None:
        path = self._journal_path(task_id)
        tmp = path.with_name(f"{task_id}.{self.owner}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(entry))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _keep_reserve(self) -> None:
        """A reserve file the journal can give up when the disk is full (see the module)."""
        reserve = self.journal / RESERVE_NAME
        try:
            if reserve.exists() and reserve.stat().st_size >= RESERVE_BYTES:
                return
            with reserve.open("wb") as out:
                out.write(b"\0" * RESERVE_BYTES)
        except OSError as err:
            reserve.unlink(missing_ok=True)
            log.warning("no journal reserve in %s (%s): a full disk may leave task outcomes "
                        "unrecorded", self.journal, err)

    def _release_reserve(self) -> bool:
        reserve = self.journal / RESERVE_NAME
        if not reserve.exists():
            return False
        reserve.unlink()
        log.error("the storage in %s is full: released the journal reserve so that task "
                  "outcomes can still be recorded", self.storage)
        return True

    # -- owners ---------------------------------------------------------------------------
    def _hold_owner_lock(self) -> IO[str]:
        """Under the journal lock: another instance removing dead owners' files must never
        see this one's file between its creation and its lock, and take it for dead."""
        with self._journal_locked():
            handle = (self.owners / f"{self.owner}.lock").open("w")
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle

    def _owner_alive(self, owner: str) -> bool:
        """Alive while its instance holds the lock on its owner file (released by the kernel
        when the process dies, whatever its hostname or pid says)."""
        if owner in _LIVE_OWNERS:
            return True
        path = self.owners / f"{owner}.lock"
        if "/" in owner or not path.exists():
            return False
        try:
            with path.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def _remove_orphans(self) -> None:
        """Half-written journal entries and owner files that dead instances left behind."""
        with self._journal_locked():
            for tmp in self.journal.glob("*.tmp"):
                parts = tmp.name.rsplit(".", 3)  # task id, owner, thread, "tmp"
                owner = parts[1] if len(parts) == 4 else ""
                if not owner or not self._owner_alive(owner):
                    tmp.unlink(missing_ok=True)
            for lock in self.owners.glob("*.lock"):
                if lock.stem != self.owner and not self._owner_alive(lock.stem):
                    lock.unlink(missing_ok=True)


def _as_report(task_id: str, entry: Mapping[str, Any]) -> TaskReport:
    try:
        return TaskReport(HostStatus(str(entry.get("status"))),
                          HostResult(entry.get("result") or HostResult.UNKNOWN),
                          str(entry.get("message") or ""))
    except ValueError as err:
        return TaskReport.unknown(f"corrupt journal entry for task {task_id}: {err}")


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
