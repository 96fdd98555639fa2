"""A storage agent whose images are real files, copied by background worker threads.

Every task has a journal file under `<storage>/tasks/` (`disk_journal`), written atomically,
so an engine that restarts finds the tasks that finished while it was down, with what they
returned (a copy's size and SHA-256). The journal names the agent instance that runs each
task, and knows from the kernel whether that instance is alive.

A task whose owner died is *resumed*: the new instance takes it over and runs it again from
the start. Both verbs are idempotent (a copy rewrites the whole image, a delete of a missing
file succeeds), so a crash costs time, never a failure; only after `max_resumes` takeovers is
the task reported `unknown`. Starting a task and taking one over happen under a lock on the
journal directory, so two processes never run the same task.

Clearing a task leaves a tombstone, an empty file under `tasks/cleared/`, and a task with one
is never started again: an engine whose view of the database is stale may still ask to start
a task that another engine ran to its end, rolled back and cleared, and running it would
bring back an image that the rollback already accounted for. Tombstones older than
`keep_cleared_seconds` are removed when an instance starts, and again every hour of its life
(a host that runs for months must not collect millions of them).

The disk filling up must not hang anyone. The agent keeps a small reserve file in the journal
directory and gives it up when a journal write fails for lack of space, so that the outcome of
a failed copy, and the deletes that free the space, can still be recorded; an outcome that
cannot be written even then is kept in memory and reported with that fact, and a start whose
journal entry cannot be written is refused with the reason.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from statemachines import AgentError, HostResult, HostStatus, TaskRejected, TaskReport

from .disk_images import Aborted, DiskImages
from .disk_journal import KEEP_CLEARED_SECONDS, LIVE_OWNERS, DiskJournal, JournalBusy, safe_name
from .verbs import COPY_VERB, DELETE_VERB

log = logging.getLogger("endaction.agents.local_disk")

# How often a long-lived instance removes tombstones past `keep_cleared_seconds`.
PRUNE_EVERY_SECONDS = 3600.0


class LocalDiskAgent:
    """The storage host of the demo: images are files under `storage/images`.

    Args:
        storage: the storage directory (templates, images and the task journal).
        workers: copies and deletes run at once.
        seconds_per_mib: slows copies down so that a person can watch them.
        max_resumes: takeovers of a task whose worker died, before it is reported `unknown`.
        failing_deletes: images whose deletes fail: a revert fault, for the demo's
            `--fail-rollback` (it lives in this process only, so another process's cleanup
            finds the fault gone).
        keep_cleared_seconds: how long the tombstone of a cleared task forbids starting it
            again. It must outlast the stalest view an engine can act on; past it, a start of
            that id would run the task again.
        on_task_end: told (verb, result, seconds) as each task it ran ends, for a host's
            metrics; not for a task stopped by `close` (the next instance runs it again).
    """

    def __init__(self, storage: Path | str, workers: int = 4, seconds_per_mib: float = 0.0,
                 max_resumes: int = 3, failing_deletes: Iterable[str] = (),
                 keep_cleared_seconds: float = KEEP_CLEARED_SECONDS,
                 on_task_end: Callable[[str, HostResult, float], None] | None = None) -> None:
        if not keep_cleared_seconds > 0:
            raise ValueError(
                f"keep_cleared_seconds must be positive (got {keep_cleared_seconds!r})")
        self.storage = Path(storage)
        self.disk = DiskImages(self.storage, seconds_per_mib, frozenset(failing_deletes))
        self.templates, self.images = self.disk.templates, self.disk.images
        self.keep_cleared_seconds = keep_cleared_seconds
        self.max_resumes = max_resumes
        self.on_task_end = on_task_end
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.task_journal = DiskJournal(self.storage, self.owner, keep_cleared_seconds)
        self.journal = self.task_journal.folder
        self._owner_file = self.task_journal.hold_owner_lock()
        self._closing = False
        self._running: dict[str, threading.Event] = {}
        self._unjournaled: dict[str, dict[str, Any]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="local-disk-agent")
        LIVE_OWNERS.add(self.owner)
        self.task_journal.remove_orphans()
        self.task_journal.prune_tombstones()
        self._pruned_at = time.monotonic()
        self.task_journal.keep_reserve()

    # -- protocol -------------------------------------------------------------------------
    def start(self, task_id: str, verb: str, parameters: Mapping[str, Any]) -> None:
        """Idempotent on the task id, and a cleared id is never started again.

        A cleared id is looked for before the parameters are checked: a start refused for
        them would be a failure in the engine's eyes, and a cleared task is nothing to do.
        """
        if self.task_journal.is_cleared(task_id):
            return
        if verb not in (COPY_VERB, DELETE_VERB):
            raise TaskRejected(f"local-disk agent has no verb {verb!r}")
        image = parameters.get("image")
        if not isinstance(image, str) or not safe_name(image):
            raise TaskRejected(f"task {task_id}: parameter 'image' must be a plain file name")
        if verb == COPY_VERB:
            source = parameters.get("source")
            if not isinstance(source, str) or not safe_name(source):
                raise TaskRejected(f"task {task_id}: parameter 'source' must be a plain file name")
            if not self.template_path(source).is_file():
                raise TaskRejected(
                    f"task {task_id}: no template image {source!r} in {self.templates}")
        with self.task_journal.locked():
            # Again under the lock, which orders this start and a clear in another process.
            if self.task_journal.is_cleared(task_id):
                return
            entry = self.task_journal.read(task_id)
            if entry is not None:
                self._take_over_if_orphaned(task_id, entry)
                return
            entry = {"verb": verb, "parameters": dict(parameters), "status": HostStatus.RUNNING,
                     "result": None, "message": "", "owner": self.owner, "resumes": 0}
            try:
                self.task_journal.write(task_id, entry)
            except OSError as err:
                raise AgentError(f"cannot write the task journal in {self.journal}: {err}") \
                    from err
            self._launch(task_id, entry)

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        """Each task's report, read from its journal entry; an id it does not know is left out.

        A task journaled as running by an owner that died is taken over here, and run again;
        an outcome the journal could not take is answered from memory. One unreadable entry
        answers `unknown` for its task alone, while a journal that another process holds too
        long (`JournalBusy`) fails the whole poll, which the engine retries.
        """
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
        """Forget the task, for good: a later start of its id does nothing.

        One still running here (the engine gave up waiting for it) is stopped, and a copy's
        output is removed: nobody accounts for it any more.
        """
        with self.task_journal.locked():  # a worker finishing now must not write the entry back
            path = self.task_journal.path(task_id)
            # The tombstone before the entry goes: a crash in between leaves a task that is
            # both journaled and cleared (treated as cleared), never one that is neither.
            self.task_journal.leave_tombstone(task_id)
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)  # not an entry this agent wrote, but in its place
                else:
                    path.unlink(missing_ok=True)
            except OSError as err:
                # The storage's fault (read-only, gone), not this agent's: one line that names
                # it, for an engine that retries the clear, instead of a host traceback on
                # every retry.
                raise AgentError(f"cannot clear task {task_id}: its journal entry in "
                                 f"{self.journal} cannot be removed: {err}") from err
            self._unjournaled.pop(task_id, None)
            stop = self._running.get(task_id)
            if stop is not None:
                stop.set()
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            self.task_journal.prune_tombstones()

    def abort(self, task_id: str) -> None:
        """Stop a copy or delete this instance runs; a task whose owner died ends at once."""
        with self.task_journal.locked():
            stop = self._running.get(task_id)
            if stop is not None:
                stop.set()
                return
            entry = self.task_journal.read(task_id)
            if entry is None or entry.get("status") != HostStatus.RUNNING:
                return
            if not self.task_journal.owner_alive(str(entry.get("owner"))):
                self._finish_entry(task_id, entry, HostResult.FAILURE,
                                   "aborted: its worker had died")
            elif not entry.get("abort_requested"):
                # Another live instance runs it: it sees the request when its engine polls.
                entry["abort_requested"] = True
                self._record(task_id, entry)

    def close(self) -> None:
        """Stop the workers; a task still running stays journaled as running.

        The next instance resumes it (its owner is gone), as after a crash.
        """
        self._closing = True
        for stop in list(self._running.values()):
            stop.set()
        self._pool.shutdown(wait=True)
        # Nothing of this instance writes any more; an instance that died after the last one
        # started left its half-written entries for whoever looks next: this one does.
        try:
            self.task_journal.remove_orphans(mine_too=True)
        except OSError as err:
            log.warning("could not remove half-written journal entries in %s: %s",
                        self.journal, err)
        LIVE_OWNERS.discard(self.owner)
        self.task_journal.close()
        try:
            (self.task_journal.owners / f"{self.owner}.lock").unlink(missing_ok=True)
        except OSError as err:
            # Harmless to leave (its lock goes with the handle, and the next instance removes
            # dead owners' files); failing here would turn a clean stop on a read-only
            # storage into a traceback and keep the handle open.
            log.warning("could not remove the owner file of %s in %s: %s", self.owner,
                        self.task_journal.owners, err)
        self._owner_file.close()

    # -- storage ----------------------------------------------------------------------------
    def template_path(self, name: str) -> Path:
        """The file of the template `name` (`DiskImages.template_path`)."""
        return self.disk.template_path(name)

    def image_path(self, name: str) -> Path:
        """The file of the image `name` (`DiskImages.image_path`)."""
        return self.disk.image_path(name)

    def image_names(self) -> list[str]:
        """The names of the images on disk, sorted (`DiskImages.image_names`)."""
        return self.disk.image_names()

    def ensure_template(self, name: str, size: int) -> None:
        """Make the template if it is missing or of another size (`DiskImages`)."""
        self.disk.ensure_template(name, size)

    @property
    def failing_deletes(self) -> frozenset[str]:
        """Images whose deletes fail in this process (the demo's `--fail-rollback`)."""
        return self.disk.failing_deletes

    @failing_deletes.setter
    def failing_deletes(self, images: frozenset[str]) -> None:
        self.disk.failing_deletes = frozenset(images)

    # -- reports and takeovers --------------------------------------------------------------
    def _report(self, task_id: str) -> TaskReport | None:
        kept = self._unjournaled.get(task_id)
        if kept is not None:
            # An outcome kept after a failed journal write may outlive a clear made meanwhile.
            cleared = self.task_journal.tombstone_path(task_id).exists()
            return None if cleared else _as_report(task_id, kept)
        entry = self.task_journal.read(task_id)
        if entry is None:
            return None
        stop = self._running.get(task_id)
        if stop is not None and entry.get("abort_requested"):
            stop.set()  # another process's engine asked for it
        if entry.get("status") == HostStatus.RUNNING and task_id not in self._running \
                and not self.task_journal.owner_alive(str(entry.get("owner"))):
            with self.task_journal.locked():
                entry = self.task_journal.read(task_id)
                if entry is None:
                    return None
                self._take_over_if_orphaned(task_id, entry)
        return _as_report(task_id, self._unjournaled.get(task_id, entry))

    def _take_over_if_orphaned(self, task_id: str, entry: dict[str, Any]) -> None:
        """Run again a task journaled as running by an owner that is gone (journal lock held)."""
        if entry.get("status") != HostStatus.RUNNING or task_id in self._running:
            return
        if self.task_journal.tombstone_path(task_id).exists():
            return  # a clear that stopped half-way: the engine is done with it
        owner = str(entry.get("owner"))
        if self.task_journal.owner_alive(owner):
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
            self.task_journal.write(task_id, entry)
        except OSError as err:
            log.error("cannot take over task %s: %s", task_id, err)
            return  # the next poll tries again; nothing runs it meanwhile
        log.warning("task %s: its worker %s is gone; running it again (resume %d of %d)",
                    task_id, owner, resumes + 1, self.max_resumes)
        self._launch(task_id, entry)

    @property
    def tasks_running(self) -> int:
        """Tasks this instance runs now (queued for a worker thread, or working)."""
        return len(self._running)

    def _launch(self, task_id: str, entry: Mapping[str, Any]) -> None:
        stop = threading.Event()
        self._running[task_id] = stop
        self._pool.submit(self._run, task_id, str(entry.get("verb")),
                          dict(entry.get("parameters") or {}), stop)

    # -- workers ----------------------------------------------------------------------------
    def _run(self, task_id: str, verb: str, parameters: dict[str, Any],
             stop: threading.Event) -> None:
        output: dict[str, Any] | None = None
        started = time.monotonic()
        try:
            if verb == COPY_VERB:
                output = self.disk.copy(parameters, stop)
            else:
                self.disk.delete(parameters, stop)
            result, message = HostResult.SUCCESS, ""
        except Aborted:
            if self._closing:
                self._running.pop(task_id, None)
                return  # not an outcome: the next instance resumes it
            result, message = HostResult.FAILURE, "aborted at the engine's request"
        except Exception as err:  # the worker must report every outcome, whatever failed
            result, message = HostResult.FAILURE, f"{type(err).__name__}: {err}"
        if self.on_task_end is not None:
            try:
                self.on_task_end(verb, result, time.monotonic() - started)
            except Exception:  # a metric must never cost the task its recorded end
                log.exception("task %s: on_task_end failed", task_id)
        self._record_end(task_id, verb, parameters, result, message, output)

    def _record_end(self, task_id: str, verb: str, parameters: dict[str, Any],
                    result: HostResult, message: str, output: dict[str, Any] | None) -> None:
        """Record the task's end in its journal entry, unless it was cleared while it ran.

        If the journal cannot take it, the end is kept in memory and logged, and its report
        says so.
        """
        try:
            with self.task_journal.locked():
                self._running.pop(task_id, None)
                entry = self.task_journal.read(task_id)
                if entry is None or self.task_journal.tombstone_path(task_id).exists():
                    # Cleared while running: the engine ended it without this answer, and may
                    # have removed the image already; a copy must not leave one behind.
                    if verb == COPY_VERB and "image" in parameters:
                        self.image_path(str(parameters["image"])).unlink(missing_ok=True)
                    if entry is not None:  # a clear that stopped half-way: finish it
                        self.task_journal.path(task_id).unlink(missing_ok=True)
                    return
                self._finish_entry(task_id, entry, result, message, output)
        except Exception as err:
            log.exception("task %s: could not record its end", task_id)
            self._unjournaled[task_id] = {
                "status": HostStatus.FINISHED, "result": result, "output": output,
                "message": f"{message} (the journal could not record this: {err})".strip()}

    def _finish_entry(self, task_id: str, entry: dict[str, Any], result: HostResult,
                      message: str, output: dict[str, Any] | None = None) -> None:
        entry.update(status=HostStatus.FINISHED, result=result, message=message, output=output)
        self._record(task_id, entry)
        if result == HostResult.SUCCESS and entry.get("verb") == DELETE_VERB:
            self.task_journal.keep_reserve()  # space came back: take the reserve up again

    def _record(self, task_id: str, entry: dict[str, Any]) -> None:
        """Write an outcome; if even that fails, keep it in memory and say so when polled."""
        try:
            self.task_journal.write(task_id, entry)
        except OSError as err:
            log.error("task %s: the journal could not record its end: %s", task_id, err)
            kept = dict(entry)
            kept["message"] = (f"{entry.get('message') or ''} (the journal in {self.journal} "
                               f"could not record this: {err})").strip()
            self._unjournaled[task_id] = kept

def _as_report(task_id: str, entry: Mapping[str, Any]) -> TaskReport:
    try:
        return TaskReport(HostStatus(str(entry.get("status"))),
                          HostResult(entry.get("result") or HostResult.UNKNOWN),
                          str(entry.get("message") or ""), entry.get("output"))
    except ValueError as err:
        return TaskReport.unknown(f"corrupt journal entry for task {task_id}: {err}")
