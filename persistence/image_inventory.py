"""The images inventory inside one tick's transaction: read through a cache, written behind.

A tick of a 10,000-disk VM asks about each image several times (validate, execute, the end,
the guards, the opposite command); one SELECT per question would dominate the tick. The
engine prefetches the images its commands name, answers come from the cache, and changes are
written with executemany when the tick flushes. The cache lives only as long as the
transaction, so another worker's changes are never hidden across ticks.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, RowMapping, bindparam, delete, insert, select, update

from statemachines.inventory import ImageRow

from .batching import chunked
from .db_errors import guarded
from .schema import images

_GET = select(images).where(images.c.id == bindparam("image_id"))
_UPDATE = update(images).where(images.c.id == bindparam("_id")).values(
    vm=bindparam("vm"), root_id=bindparam("root_id"), source=bindparam("source"),
    status=bindparam("status"))
_DELETE = delete(images).where(images.c.id == bindparam("_id"))


class SqlImageInventory:
    def __init__(self, conn: Connection, database: str) -> None:
        self._conn = conn
        self._database = database
        self._rows: dict[str, ImageRow | None] = {}  # None: known to be absent
        self._in_db: dict[str, bool] = {}
        self._dirty: set[str] = set()

    def prefetch(self, image_ids: Iterable[str]) -> None:
        with guarded(self._database, "read the images inventory"):
            self._prefetch(image_ids)

    def _prefetch(self, image_ids: Iterable[str]) -> None:
        missing = [i for i in set(image_ids) if i not in self._rows]
        for chunk in chunked(missing):
            found = {r.id: _row(r) for r in self._conn.execute(
                select(images).where(images.c.id.in_(chunk))).mappings()}
            for image_id in chunk:
                self._remember(image_id, found.get(image_id))

    def _remember(self, image_id: str, row: ImageRow | None) -> None:
        self._rows[image_id] = row
        self._in_db[image_id] = row is not None

    def get(self, image_id: str) -> ImageRow | None:
        if image_id not in self._rows:
            with guarded(self._database, f"read image {image_id}"):
                found = self._conn.execute(_GET, {"image_id": image_id}).mappings().first()
            self._remember(image_id, _row(found) if found is not None else None)
        return self._rows[image_id]

    def add(self, image: ImageRow) -> None:
        existing = self.get(image.id)
        if existing == image:
            return
        if existing is not None:
            raise ValueError(f"image {image.id!r} already exists as {existing}")
        self._set(image.id, image)

    def set_status(self, image_id: str, status: str) -> None:
        existing = self.get(image_id)
        if existing is not None and existing.status != status:
            self._set(image_id, ImageRow(existing.id, existing.vm, existing.root_id,
                                         existing.source, status))

    def remove(self, image_id: str) -> bool:
        if self.get(image_id) is None:
            return False
        self._set(image_id, None)
        return True

    def _set(self, image_id: str, row: ImageRow | None) -> None:
        self._rows[image_id] = row
        self._dirty.add(image_id)

    def flush(self) -> None:
        inserts, updates, deletes = [], [], []
        for image_id in sorted(self._dirty):
            row, was_there = self._rows[image_id], self._in_db[image_id]
            if row is None:
                if was_there:
                    deletes.append({"_id": image_id})
            elif was_there:
                updates.append({"_id": image_id, "vm": row.vm, "root_id": row.root_id,
                                "source": row.source, "status": row.status})
            else:
                inserts.append({"id": row.id, "vm": row.vm, "root_id": row.root_id,
                                "source": row.source, "status": row.status})
            self._in_db[image_id] = row is not None
        if deletes:
            self._conn.execute(_DELETE, deletes)
        if updates:
            self._conn.execute(_UPDATE, updates)
        if inserts:
            self._conn.execute(insert(images), inserts)
        self._dirty.clear()


def _row(r: RowMapping) -> ImageRow:
    return ImageRow(r["id"], r["vm"], r["root_id"], r["source"], r["status"])
