"""Ids of commands and tasks, unique across every engine and client sharing a database."""

from __future__ import annotations

import secrets
import time


def new_id() -> str:
    """Time-ordered (like UUIDv7): 12 hex digits of milliseconds, then 20 random ones.

    Ids made in one tick sort together, so the primary-key and history indexes grow at their
    end instead of taking random inserts all over the B-tree."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
