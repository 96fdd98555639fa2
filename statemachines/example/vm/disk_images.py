"""The images of the local-disk host: template disks and their copies, as files.

Here is what the two verbs, copy and delete, do to them. `LocalDiskAgent` runs these on its
worker threads and journals their outcomes; nothing here knows of tasks.

A copy writes the whole image (so running it again after a crash is harmless) and sums it
as it goes; a delete of a missing image succeeds. Both stop at the next 1 MiB when asked.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .disk_journal import safe_name

CHUNK = 1 << 20
IMAGE_SUFFIX = ".img"


class Aborted(Exception):
    """The engine asked for this task to stop."""


class DiskImages:
    """`storage/templates` and `storage/images`.

    Args:
        storage: the storage directory.
        seconds_per_mib: slows copies down so that a person can watch them.
        failing_deletes: images whose deletes fail (the demo's `--fail-rollback`).
    """

    def __init__(self, storage: Path, seconds_per_mib: float = 0.0,
                 failing_deletes: frozenset[str] = frozenset()) -> None:
        self.templates = storage / "templates"
        self.images = storage / "images"
        for folder in (self.templates, self.images):
            folder.mkdir(parents=True, exist_ok=True)
        self.seconds_per_mib = seconds_per_mib
        self.failing_deletes = failing_deletes

    def template_path(self, name: str) -> Path:
        """The file of the template `name`, which copies read from."""
        return self.templates / f"{name}{IMAGE_SUFFIX}"

    def image_path(self, name: str) -> Path:
        """The file of the image `name`, which a copy writes and a delete removes."""
        return self.images / f"{name}{IMAGE_SUFFIX}"

    def image_names(self) -> list[str]:
        """The names of the images on disk, sorted, a partial copy's included."""
        return sorted(p.name[: -len(IMAGE_SUFFIX)] for p in self.images.glob(f"*{IMAGE_SUFFIX}"))

    def ensure_template(self, name: str, size: int) -> None:
        """Make the template if it is missing or of another size.

        It is written aside and renamed into place: a copy that reads it meanwhile (another
        worker, another process) sees the old file or the whole new one, never half of it.
        """
        if not safe_name(name):
            raise OSError(errno.EINVAL, f"template name {name[:80]!r} is not a plain name")
        path = self.template_path(name)
        if path.is_file() and path.stat().st_size == size:
            return
        block = (name.encode() * (CHUNK // max(1, len(name)) + 1))[:CHUNK]
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with aside.open("wb") as out:
                left = size
                while left > 0:
                    out.write(block[: min(left, CHUNK)])
                    left -= CHUNK
            os.replace(aside, path)
        finally:
            aside.unlink(missing_ok=True)

    def copy(self, parameters: Mapping[str, Any], stop: threading.Event) -> dict[str, Any]:
        """The copy's output: what was written, and its checksum, summed as it was copied."""
        source = self.template_path(parameters["source"])
        target = self.image_path(parameters["image"])
        size = source.stat().st_size
        fail_at = size // 2 if parameters.get("inject_failure") else None
        copied = 0
        digest = hashlib.sha256()
        if stop.is_set():
            raise Aborted  # aborted while queued: never create the image at all
        with source.open("rb") as src, target.open("wb") as dst:
            while chunk := src.read(CHUNK):
                if stop.is_set():
                    raise Aborted
                if fail_at is not None and copied + len(chunk) > fail_at:
                    dst.write(chunk[: fail_at - copied])
                    raise OSError(f"injected failure after {fail_at} bytes of {size}")
                dst.write(chunk)
                digest.update(chunk)
                copied += len(chunk)
                if self.seconds_per_mib:
                    time.sleep(self.seconds_per_mib * len(chunk) / CHUNK)
        return {"bytes": copied, "sha256": digest.hexdigest()}

    def delete(self, parameters: Mapping[str, Any], stop: threading.Event) -> None:
        """Remove the image's file; a missing one is no error, so a repeated delete succeeds.

        A stop asked before it begins aborts it, and an image in `failing_deletes` fails.
        """
        if stop.is_set():
            raise Aborted
        image = str(parameters["image"])
        if image in self.failing_deletes:
            raise OSError(f"injected failure: deleting {image} fails in this process")
        self.image_path(image).unlink(missing_ok=True)
