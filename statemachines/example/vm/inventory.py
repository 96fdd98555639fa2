"""The VM example's image inventory: its own table, kept by a ledger like any user's.

The engine's first loop guard asks it whether an image still exists: an opposite command
(RemoveImage) acts only while the image it reverts is in the inventory, so an opposite command
that already removed it leaves the reverted command nothing to revert. Its rows are read and
written inside the engine's tick, so they commit or roll back with the commands that made them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from sqlalchemy import Column, MetaData, String, Table

from persistence import TableLedger

IMAGE = "image"

metadata = MetaData()

images = Table(
    "images",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("vm", String(200), nullable=False, index=True),
    Column("root_id", String(64), nullable=False, index=True),
    Column("source", String(200), nullable=False),
    Column("status", String(32), nullable=False),
)


class ImageStatus(StrEnum):
    """What an image's row says became of its copy and of its VM (oVirt's image statuses)."""

    #: Being copied.
    LOCKED = "locked"
    #: Copied, and its VM was created.
    OK = "ok"
    #: The copy or its VM failed; the file may be partial.
    ILLEGAL = "illegal"


@dataclass(frozen=True, slots=True)
class ImageRow:
    """One image the example made: its VM, the root that made it, its template."""

    id: str
    vm: str
    root_id: str
    source: str
    status: str = ImageStatus.LOCKED


class ImageInventory(TableLedger[ImageRow]):
    """Images by name; `exists` is the existence guard for resources of type "image"."""

    resource_type = IMAGE
    table = images
    row_type = ImageRow

    def add(self, image: ImageRow) -> None:
        """Insert, or leave an identical row as it is (execute may run again after a crash)."""
        existing = self.get(image.id)
        if existing == image:
            return
        if existing is not None:
            raise ValueError(f"image {image.id!r} already exists as {existing}")
        self.put(image)

    def set_status(self, image_id: str, status: ImageStatus) -> None:
        """Set the status of the image's row; a row that is gone, or has it already, is left.

        A hook may run again after a crash, and a revert may have removed the row already.
        """
        existing = self.get(image_id)
        if existing is not None and existing.status != status:
            self.put(replace(existing, status=status))
