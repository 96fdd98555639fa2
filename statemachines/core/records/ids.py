"""Ids of commands and tasks, unique across every engine and client sharing a database."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ..errors import InvalidConfiguration
from .records import MAX_OBJECT_ID_LENGTH, name_problems

#: Ids whose random part one read of the operating system's randomness covers. One read
#: per id (`secrets.token_hex`) was a system call each, 7% of a 10,000-disk rollback.
BATCH = 4096
_RANDOM_BYTES = 10  # 80 random bits per id


class _Randomness:
    """os.urandom read in batches and handed out 10 bytes at a time.

    `list.pop` is atomic, so threads need no lock: two refilling at once each read fresh
    bytes. The tails are per process: a forked child drops what it inherited (it would
    otherwise hand out the same tails as its parent, and both would make the same ids).
    """

    def __init__(self) -> None:
        self._tails: list[str] = []

    def tail(self) -> str:
        try:
            return self._tails.pop()
        except IndexError:
            text = os.urandom(BATCH * _RANDOM_BYTES).hex()
            width = 2 * _RANDOM_BYTES
            self._tails = [text[i:i + width] for i in range(0, len(text), width)]
            return self._tails.pop()

    def forget(self) -> None:
        self._tails = []


_RANDOMNESS = _Randomness()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RANDOMNESS.forget)


def new_id() -> str:
    """Time-ordered (like UUIDv7): 12 hex digits of milliseconds, then 20 random ones.

    Ids made in one tick sort together, so the primary-key and history indexes grow at their
    end instead of taking random inserts all over the B-tree.
    """
    return f"{time.time_ns() // 1_000_000:012x}{_RANDOMNESS.tail()}"


def checked(ids: Callable[[], str]) -> Callable[[], str]:
    """`ids` (an `Engine(ids=...)`), refusing by name an id the database cannot store.

    A generator of ids is configuration, and its first bad id is where to say so.
    """
    if ids is new_id:
        return ids

    def make() -> str:
        made = ids()
        problems = name_problems("an id made by Engine(ids=...)", made, MAX_OBJECT_ID_LENGTH)
        if problems:
            raise InvalidConfiguration(problems[0])
        return made

    return make
