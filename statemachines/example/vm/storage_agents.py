"""The VM example's storage host, built from the process's settings.

The host runs in this process over a storage directory of template disks, or in another
process reached over HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from persistence import SqlStore
from statemachines import Agent, AgentError, AgentSettings, EndactionError, InvalidConfiguration
from statemachines.toolkit import DEFAULT_HOME, UsageProblem

from .commands import STORAGE_AGENT
from .host_token import read_token
from .local_disk import LocalDiskAgent

if TYPE_CHECKING:
    from .remote_storage import RemoteStorage

TEMPLATE_BYTES = 2 << 20
# Slow the copies a little so a human can watch them progress.
SECONDS_PER_MIB = 0.05
STORAGE_SETTING = "local_disk_agent.storage"
DATABASE_ID_SETTING = "local_disk_agent.database_id"
#: In the storage directory: the id of the database whose images it holds.
DATABASE_MARKER = "endaction-database-id"


def template_name(index: int) -> str:
    """The name of template disk `index`, shared by what makes templates and what copies them."""
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

    def image_names(self) -> list[str]:
        """The names of the images the host holds, sorted: where the demo finds leftovers."""

    def ensure_template(self, name: str, size: int) -> None:
        """Make the template `name` of `size` bytes, if it is missing or of another size."""

    def close(self) -> None:
        """Release what the host holds here (its workers or its HTTP client); no call may follow."""


class StorageMismatch(UsageProblem):
    """The database's tasks refer to files in another storage directory."""


class StorageUnusable(EndactionError):
    """The storage directory cannot be made or written."""


def _storage_of(store: SqlStore, asked: Path | None) -> tuple[Path, bool]:
    """The storage directory, and whether the database has it pinned already.

    It is pinned on first use: the database's tasks and inventory describe files there, and
    polling or deleting in another directory would report every copy lost and every removal
    done while the real files stay behind.
    """
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


def vm_agents(settings: AgentSettings) -> dict[str, StorageHost]:
    """The VM example's one agent, its storage host, from the process's settings.

    With `settings.url` the host is another process (`endaction agent serve`), checked to
    answer before anything runs. Otherwise it runs here, over the storage directory, which is
    pinned in the database only once the agent could use it: a mistyped --storage on first
    use does not lock the database to a directory that never worked.

    One option: `templates=N` makes sure template-disk0..N-1 exist before anything runs (a
    worker fleet's storage needs the templates its roots copy).
    """
    templates = _templates_option(settings.options)
    if settings.url is not None:
        host = _remote_host(settings)
        _make_templates(host, templates)
        return {STORAGE_AGENT: host}
    store = settings.store
    if not isinstance(store, SqlStore):
        raise UsageProblem("the VM example keeps its storage directory in a SQL store")
    folder, pinned = _storage_of(store, settings.storage)
    try:
        agent = LocalDiskAgent(folder, seconds_per_mib=SECONDS_PER_MIB)
    except OSError as err:
        raise StorageUnusable(f"storage directory {folder} is unusable: {err}") from err
    try:
        _claim_storage(store, folder)
    except BaseException:
        agent.close()
        raise
    _make_templates(agent, templates)
    if not pinned:
        store.put_setting(STORAGE_SETTING, str(folder))
    return {STORAGE_AGENT: agent}


def _claim_storage(store: SqlStore, folder: Path) -> None:
    """One storage directory, one database: the directory keeps the id of its first database.

    The leftovers are what the directory holds that the database does not account for, so a
    second database on the same directory would report the first one's images as its own
    leftovers (and its cleanup could never end clean).
    """
    database_id = store.setting(DATABASE_ID_SETTING)
    if database_id is None:
        database_id = uuid.uuid4().hex
        store.put_setting(DATABASE_ID_SETTING, database_id)
    marker = folder / DATABASE_MARKER
    try:
        found = marker.read_text().strip() if marker.exists() else None
        if found is None:
            marker.write_text(database_id + "\n")
    except OSError as err:
        raise StorageUnusable(f"storage directory {folder} is unusable: {err}") from err
    if found is not None and found != database_id:
        raise StorageMismatch(f"storage directory {folder} belongs to another database "
                              f"(id {found}, this one is {database_id}): give each database "
                              "a storage directory of its own (if that database's file was "
                              "deleted or replaced, put it back: its images are kept here)")


def _make_templates(host: StorageHost, count: int) -> None:
    try:
        for index in range(count):
            host.ensure_template(template_name(index), TEMPLATE_BYTES)
    except (OSError, AgentError) as err:
        host.close()
        raise StorageUnusable(f"cannot write the template disks in {host.templates}: "
                              f"{err}") from err


def _templates_option(options: Mapping[str, str]) -> int:
    unknown = sorted(set(options) - {"templates"})
    if unknown:
        raise UsageProblem(f"the VM example's agents know no option {unknown[0]!r} (only "
                           "templates=N)")
    text = options.get("templates", "0").strip()
    if not text.isdigit() or int(text) > 100_000:
        raise UsageProblem(f"--agent-option templates={text!r}: expected a whole number "
                           "from 0 to 100000")
    return int(text)


def storage_host(agents: Mapping[str, Agent]) -> StorageHost:
    """The storage host among an application's agents, for the demo's own checks."""
    return cast(StorageHost, agents[STORAGE_AGENT])


def _remote_host(settings: AgentSettings) -> RemoteStorage:
    """The storage host at `settings.url`, once it has answered in this protocol.

    The client is imported here: it needs the `http` extra, which the demo's own storage
    host in this process does not.
    """
    from statemachines.http import PROTOCOL_VERSION, ClientTls

    from .remote_storage import RemoteStorage

    url, token_file = str(settings.url), settings.token_file
    if token_file is None:
        raise UsageProblem("--agent-url needs --agent-token-file: the host refuses callers "
                           "without its token")
    try:
        token = read_token(token_file)
    except AgentError as err:
        raise UsageProblem(str(err)) from err
    tls = None
    if any(p is not None for p in (settings.ca_file, settings.cert_file, settings.key_file)):
        tls = ClientTls(settings.ca_file, settings.cert_file, settings.key_file)
    try:
        host = RemoteStorage(url, token, tls=tls)
    except InvalidConfiguration as err:
        raise UsageProblem(str(err)) from err
    try:
        health = host.health()
    except AgentError as err:
        host.close()
        raise StorageUnusable(f"the storage host at {url} cannot be used: {err}") from err
    if health.get("protocol") != PROTOCOL_VERSION:
        host.close()
        raise StorageUnusable(f"the storage host at {url} speaks protocol "
                              f"{health.get('protocol')!r}, this endaction {PROTOCOL_VERSION}")
    return host
