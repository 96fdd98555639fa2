"""The engine's own inventory of images: what the first loop guard consults.

An opposite command acts only while the image it undoes is still in this inventory, so a
compensation that already removed it leaves the compensated command nothing to revert.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ImageStatus(StrEnum):
    LOCKED = "locked"  # being copied
    OK = "ok"
    ILLEGAL = "illegal"  # the copy failed; the file may be partial


@dataclass(frozen=True, slots=True)
class ImageRow:
    id: str
    vm: str
    root_id: str
    source: str
    status: str = ImageStatus.LOCKED


class ImageInventory(Protocol):
    def get(self, image_id: str) -> ImageRow | None: ...

    def add(self, image: ImageRow) -> None:
        """Insert, or leave an identical row as it is (execute may run again after a crash)."""

    def set_status(self, image_id: str, status: str) -> None: ...

    def remove(self, image_id: str) -> bool:
        """Delete the row; False when it was already gone."""
