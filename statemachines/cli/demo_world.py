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
    agent = LocalDiskAgent(storage or DEFAULT_HOME / "storage", seconds_per_mib=SECONDS_PER_MIB)
    engine = Engine(store, {STORAGE_AGENT: agent}, example_registry(), on_commit=on_commit)
    return DemoWorld(store, agent, engine)
