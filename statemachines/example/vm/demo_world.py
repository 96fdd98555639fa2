"""The demo's world: a store, a storage host with template disks (in this process, or another
one reached over HTTP), and an engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from persistence import SqlStore
from statemachines import (
    Agent,
    AgentError,
    EndactionError,
    Engine,
    Limits,
    TickReport,
    WorkerLease,
)
from statemachines.cli.database import DEFAULT_HOME, open_database
from statemachines.cli.errors import UsageProblem
from statemachines.http import PROTOCOL_VERSION

from .commands import STORAGE_AGENT, vm_registry
from .inventory import ImageInventory
from .local_disk import LocalDiskAgent
from .storage_host import RemoteStorage, read_token

TEMPLATE_BYTES = 2 << 20
# Slow the copies a little so a human can watch them progress.
SECONDS_PER_MIB = 0.05
STORAGE_SETTING = "local_disk_agent.storage"


def template_name(index: int) -> str:
    return f"template-disk{index}"


class StorageHost(Agent, Protocol):
    """What the demo needs of its storage host, wherever it runs."""

    failing_deletes: frozenset[str]

    @property
    def storage(self) -> Path | str:
        """Where it keeps the images, for messages."""

    @property
    def templates(self) -> Path | str:
        """Where it keeps the templates, for messages."""

    def image_names(self) -> list[str]: ...

    def ensure_template(self, name: str, size: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class DemoWorld:
    store: SqlStore
    agent: StorageHost
    engine: Engine

    def close(self) -> None:
        self.agent.close()
        self.store.dispose()


class StorageMismatch(UsageProblem):
    """The database's tasks refer to files in another storage directory."""


class StorageUnusable(EndactionError):
    """The storage directory cannot be made or written."""


def _storage_of(store: SqlStore, asked: Path | None) -> tuple[Path, bool]:
    """The storage directory, and whether the database has it pinned already.

    It is pinned on first use: the database's tasks and inventory describe files there, and
    polling or deleting in another directory would report every copy lost and every removal
    done while the real files stay behind."""
    pinned = store.setting(STORAGE_SETTING)
    if asked is not None:
        chosen = asked.expanduser().absolute()
        if pinned is not None and Path(pinned) != chosen:
            raise StorageMismatch(
                f"database {store.url} keeps its images in {pinned}; --storage {chosen} is "
                "another directory")
    else:
        chosen = Path(pinned) if pinned is not None else (DEFAULT_HOME / "storage").absolute()
    return chosen, pinned is not None


def open_world(
    db: str | None,
    storage: Path | None,
    on_commit: Callable[[TickReport], None] | None = None,
    create: bool = True,
    missing: str = "",
    limits: Limits | None = None,
    lease: WorkerLease | None = None,
    agent_url: str | None = None,
    agent_token_file: Path | None = None,
) -> DemoWorld:
    """Open the demo's world; with create=False a missing database is an error, not a new one.

    The storage directory is pinned in the database only once the agent could use it, so a
    mistyped --storage on first use does not lock the database to a directory that never
    worked. With `agent_url` the storage host is another process (`endaction agent serve`),
    checked to answer before anything runs."""
    store = open_database(db, create=create, missing=missing, ledgers=[ImageInventory])
    if agent_url is not None:
        try:
            remote = _remote_host(agent_url, agent_token_file)
        except BaseException:
            store.dispose()
            raise
        engine = Engine(store, {STORAGE_AGENT: remote}, vm_registry(), limits=limits,
                        on_commit=on_commit, lease=lease)
        return DemoWorld(store, remote, engine)
    try:
        folder, pinned = _storage_of(store, storage)
        try:
            agent = LocalDiskAgent(folder, seconds_per_mib=SECONDS_PER_MIB)
        except OSError as err:
            raise StorageUnusable(f"storage directory {folder} is unusable: {err}") from err
        if not pinned:
            store.put_setting(STORAGE_SETTING, str(folder))
    except BaseException:
        store.dispose()
        raise
    engine = Engine(store, {STORAGE_AGENT: agent}, vm_registry(), limits=limits,
                    on_commit=on_commit, lease=lease)
    return DemoWorld(store, agent, engine)


def _remote_host(url: str, token_file: Path | None) -> RemoteStorage:
    if token_file is None:
        raise UsageProblem("--agent-url needs --agent-token-file: the host refuses callers "
                           "without its token")
    try:
        token = read_token(token_file)
    except AgentError as err:
        raise UsageProblem(str(err)) from err
    host = RemoteStorage(url, token)
    try:
        health = host.health()
    except AgentError as err:
        host.close()
        raise StorageUnusable(f"the storage host at {url} does not answer: {err}") from err
    if health.get("protocol") != PROTOCOL_VERSION:
        host.close()
        raise StorageUnusable(f"the storage host at {url} speaks protocol "
                              f"{health.get('protocol')!r}, this endaction {PROTOCOL_VERSION}")
    return host
