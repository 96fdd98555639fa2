"""The demo's world: a store, a local-disk storage agent with template disks, and an engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from persistence import SqlStore, normalise_url, open_store

from ..agents.local_disk import LocalDiskAgent
from ..engine import Engine
from ..example import example_registry
from ..example.vm_commands import STORAGE_AGENT
from ..tick_report import TickReport

DEFAULT_HOME = Path("endaction-data")
TEMPLATE_BYTES = 2 << 20
# Slow the copies a little so a human can watch them progress.
SECONDS_PER_MIB = 0.05
STORAGE_SETTING = "local_disk_agent.storage"


def template_name(index: int) -> str:
    return f"template-disk{index}"


@dataclass
class DemoWorld:
    store: SqlStore
    agent: LocalDiskAgent
    engine: Engine

    def close(self) -> None:
        self.agent.close()
        self.store.dispose()


def default_db_url() -> str:
    return f"sqlite:///{(DEFAULT_HOME / 'endaction.db').absolute()}"


class StorageMismatch(ValueError):
    """The database's tasks refer to files in another storage directory."""


def _storage_of(store: SqlStore, asked: Path | None) -> Path:
    """The storage directory is pinned in the database on first use: its tasks and inventory
    describe files there, and polling or deleting in another directory would report every copy
    lost and every removal done while the real files stay behind."""
    pinned = store.setting(STORAGE_SETTING)
    if asked is not None:
        chosen = asked.expanduser().absolute()
        if pinned is not None and Path(pinned) != chosen:
            raise StorageMismatch(
                f"database {store.url} keeps its images in {pinned}; --storage {chosen} is "
                "another directory")
    else:
        chosen = Path(pinned) if pinned is not None else (DEFAULT_HOME / "storage").absolute()
    if pinned is None:
        store.put_setting(STORAGE_SETTING, str(chosen))
    return chosen


def open_world(
    db_url: str | None,
    storage: Path | None,
    on_commit: Callable[[TickReport], None] | None = None,
    create: bool = True,
) -> DemoWorld:
    """Open the demo's world; with create=False a missing SQLite file is an error, not a new DB."""
    url = normalise_url(db_url or default_db_url())
    if not create:
        database = make_url(url).database
        if make_url(url).get_backend_name() == "sqlite" and database \
                and not Path(database).exists():
            raise FileNotFoundError(f"no database at {database}: nothing to resume")
    store = open_store(url, create=create)
    try:
        folder = _storage_of(store, storage)
    except Exception:
        store.dispose()
        raise
    agent = LocalDiskAgent(folder, seconds_per_mib=SECONDS_PER_MIB)
    engine = Engine(store, {STORAGE_AGENT: agent}, example_registry(), on_commit=on_commit)
    return DemoWorld(store, agent, engine)
