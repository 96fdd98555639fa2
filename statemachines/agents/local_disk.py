"""A storage agent whose images are real files, copied by background worker threads.

Every task has a journal file under `<storage>/tasks/`, written atomically, so an engine that
restarts finds the tasks that finished while it was down. A task journaled as running by a
process that no longer exists died with it: it is reported `unknown`, which ends as a failure
and gets its partial image compensated, instead of being polled forever.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..host_status import HostResult, HostStatus, TaskReport
from .protocol import AgentError, TaskRejected
from .simulated import COPY_VERB, DELETE_VERB

CHUNK = 1 << 20
IMAGE_SUFFIX = ".img"
# Owners of the agents of this process that are still open: their running tasks are alive.
_LIVE_OWNERS: set[str] = set()


class LocalDiskAgent:
    def __init__(self, storage: Path | str, workers: int = 4, seconds_per_mib: float = 0.0) -> None:
        self.storage = Path(storage)
        self.templates = self.storage / "templates"
        self.images = self.storage / "images"
        self.journal = self.storage / "tasks"
        for folder in (self.templates, self.images, self.journal):
            folder.mkdir(parents=True, exist_ok=True)
        self.seconds_per_mib = seconds_per_mib
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="local-disk-agent")
        self._lock = threading.Lock()
        _LIVE_OWNERS.add(self.owner)

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
        with self._lock:
            if self._journal_path(task_id).exists():
                return
            self._write_journal(task_id, {"verb": verb, "parameters": dict(parameters),
                                          "status": HostStatus.RUNNING, "result": None,
                                          "message": "", "owner": self.owner})
        self._pool.submit(self._run, task_id, verb, dict(parameters))

    def poll(self, task_ids: Sequence[str]) -> Mapping[str, TaskReport]:
        answer: dict[str, TaskReport] = {}
        for task_id in task_ids:
            try:
                entry = self._read_journal(task_id)
            except AgentError as err:
                # One unreadable journal file must not hide the other tasks' answers.
                answer[task_id] = TaskReport.unknown(str(err))
                continue
            if entry is None:
                continue
            status = entry.get("status")
            if status == HostStatus.RUNNING and not self._owner_alive(str(entry.get("owner"))):
                answer[task_id] = TaskReport.unknown(
                    f"task {task_id} was running in {entry.get('owner')}, which is gone"
                )
                continue
            try:
                answer[task_id] = TaskReport(
                    HostStatus(str(status)), HostResult(entry.get("result") or HostResult.UNKNOWN),
                    str(entry.get("message") or ""),
                )
            except ValueError as err:
                answer[task_id] = TaskReport.unknown(
                    f"corrupt journal entry for task {task_id}: {err}")
        return answer

    def clear(self, task_id: str) -> None:
        with self._lock:  # a worker finishing now must not write the entry back
            self._journal_path(task_id).unlink(missing_ok=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        _LIVE_OWNERS.discard(self.owner)

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

    # -- workers ----------------------------------------------------------------------------
    def _run(self, task_id: str, verb: str, parameters: dict[str, Any]) -> None:
        try:
            if verb == COPY_VERB:
                self._copy(parameters)
            else:
                self.image_path(parameters["image"]).unlink(missing_ok=True)
            result, message = HostResult.SUCCESS, ""
        except Exception as err:  # the worker must journal every outcome, whatever failed
            result, message = HostResult.FAILURE, f"{type(err).__name__}: {err}"
        with self._lock:
            entry = self._read_journal(task_id)
            if entry is None:  # cleared meanwhile: nobody is waiting for this answer
                return
            entry.update(status=HostStatus.FINISHED, result=result, message=message)
            self._write_journal(task_id, entry)

    def _copy(self, parameters: Mapping[str, Any]) -> None:
        source = self.template_path(parameters["source"])
        target = self.image_path(parameters["image"])
        size = source.stat().st_size
        fail_at = size // 2 if parameters.get("inject_failure") else None
        copied = 0
        with source.open("rb") as src, target.open("wb") as dst:
            while chunk := src.read(CHUNK):
                if fail_at is not None and copied + len(chunk) > fail_at:
                    dst.write(chunk[: fail_at - copied])
                    raise OSError(f"injected failure after {fail_at} bytes of {size}")
                dst.write(chunk)
                copied += len(chunk)
                if self.seconds_per_mib:
                    time.sleep(self.seconds_per_mib * len(chunk) / CHUNK)

    # -- journal ------------------------------------------------------------------------------
    def _journal_path(self, task_id: str) -> Path:
        if not _safe_name(task_id):
            raise TaskRejected(f"task id {task_id!r} is not a plain name")
        return self.journal / f"{task_id}.json"

    def _read_journal(self, task_id: str) -> dict[str, Any] | None:
        try:
            text = self._journal_path(task_id).read_text()
        except FileNotFoundError:
            return None
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as err:
            raise AgentError(f"corrupt journal file for task {task_id}: {err}") from err
        if not isinstance(entry, dict):
            raise AgentError(f"corrupt journal file for task {task_id}: not an object")
        return entry

    def _write_journal(self, task_id: str, entry: Mapping[str, Any]) -> None:
        path = self._journal_path(task_id)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, path)

    def _owner_alive(self, owner: str) -> bool:
        if owner in _LIVE_OWNERS:
            return True
        host, _, rest = owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host != socket.gethostname() or not pid_text.isdigit():
            return True  # another machine's worker: trust its journal
        pid = int(pid_text)
        if pid == os.getpid():
            return False  # an agent object of this process that was closed or abandoned
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
