"""The application: what one deployment declares, in one object that the CLI and workers load.

Every process that runs or reads a domain's work must agree on the same command types, agents,
ledgers, limits and policies; a worker that knew other command types than the process that
submitted the root would refuse it, and a status tool without the ledgers would open a database
it cannot read. So they are declared once, as an `App`, and named to every command as
`--app module:attribute` (the way Celery, uvicorn and Flask name theirs).

The agents are built, not given: a worker's agent talks to a host whose address, token or
directory are the deployment's settings, known only when the process starts. `App.agents` is
the function that builds them from those settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..commands.command import CommandRegistry
from ..commands.compensation_policy import RevertPolicy
from ..errors import InvalidConfiguration
from ..ports.agent_protocol import Agent
from ..ports.ledger import Ledger
from ..ports.store_protocol import Store
from ..records.limits import Limits
from ..records.retry_policy import RetryPolicy
from ..records.tick_report import TickReport
from .engine import Engine
from .leases import WorkerLease


@dataclass(frozen=True)
class AgentSettings:
    """What the process was told about its agents, handed to `App.agents`.

    It comes from `--agent-url`, `--agent-token-file`, `--storage` and
    `--agent-option KEY=VALUE`.

    Attributes:
        store: the database the engine runs on; an agent may keep a setting there (the VM
            example pins its storage directory, so no later process points it elsewhere).
        url: where a remote host answers, if the agents run in another process.
        token_file: the file holding that host's token.
        storage: a directory for an agent that runs in this process and keeps files.
        options: anything else the application's agents understand, as text.
        creating: True when the command may create the database (a worker or `submit`);
            False for commands that only read or resume it.
        ca_file, cert_file, key_file: for an `https://` host: the CA its certificate is
            trusted by (None: the system's), and this process's own certificate and key for
            a host that requires one (mutual TLS); see `statemachines.http.ClientTls`.
    """

    store: Store
    url: str | None = None
    token_file: Path | None = None
    storage: Path | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    creating: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class Agents(dict[str, Agent]):
    """The agents an application built, by the name its commands start tasks on."""

    def close(self) -> None:
        """Close the agents that hold something (a connection pool, a file)."""
        for agent in self.values():
            close = getattr(agent, "close", None)
            if callable(close):
                close()


AgentFactory = Callable[[AgentSettings], Mapping[str, Agent]]
#: Finds what the domain left behind outside the engine's own records (a file on a host with
#: no row in its ledger, say): one line per thing, empty when nothing is.
LeftoverFinder = Callable[[Store, Mapping[str, Agent]], Sequence[str]]
#: The end-of-run report of one root, as JSON (`resume --json`), and its text. A report has at
#: least "root" (with "id", "status", "outcome", "held"), "tasks" (each with "status") and
#: "leftovers": the exit status is read from those.
RootReporter = Callable[[Store, Mapping[str, Agent], str], dict[str, Any]]
ReportRenderer = Callable[[dict[str, Any]], str]


def no_leftovers(store: Store, agents: Mapping[str, Agent]) -> Sequence[str]:
    """The default: the domain keeps nothing the engine's records would not show."""
    return ()


@dataclass(frozen=True)
class App:
    """A deployment's declaration: name it to the CLI as `--app module:attribute`.

    Attributes:
        name: shown in logs and `--help`.
        registry: the command types it runs.
        agents: builds the agents from the process's settings; called once per process.
        ledgers: the ledgers its commands write to (their tables are created with the schema).
        limits: the engine's bounds (a worker's `--task-timeout` overrides `task_timeout`).
        policy: how failed reverts are retried.
        retry: how failed forward tasks are retried, for every command type.
        leftovers: what the domain finds left behind (see `LeftoverFinder`); `resume`,
            `cleanup` and `demo` exit 3 when it finds anything.
        report: the end-of-run report of a root, when the domain has more to say than the
            generic one (the VM example names its VM and what its storage holds).
        render_report: that report as text.
        drawings: extra pictures `endaction diagrams` draws beside the machines (each a
            `statemachines.diagrams.Drawing`), e.g. the domain's own flow.
        commands: extra `click` commands the `endaction` group offers while this is the
            application named by ENDACTION_APP (or the default): a domain's demo, say.
    """

    name: str
    registry: CommandRegistry
    agents: AgentFactory
    ledgers: Sequence[type[Ledger]] = ()
    limits: Limits = field(default_factory=Limits)
    policy: RevertPolicy | None = None
    retry: RetryPolicy | None = None
    leftovers: LeftoverFinder = no_leftovers
    report: RootReporter | None = None
    render_report: ReportRenderer | None = None
    drawings: Callable[[], Sequence[Any]] = tuple
    commands: Sequence[Any] = ()

    def __post_init__(self) -> None:
        """Refuse a registry or agent factory of the wrong kind, naming the App that has it.

        The fault then shows where the application is declared (when its module is loaded),
        not later, in a worker that first uses it.
        """
        if not isinstance(self.registry, CommandRegistry):
            raise InvalidConfiguration(f"App {self.name!r}: registry must be a "
                                       f"CommandRegistry, not {type(self.registry).__name__}")
        if not callable(self.agents):
            raise InvalidConfiguration(f"App {self.name!r}: agents must be a function of "
                                       "AgentSettings that returns the agents by name")

    def build_agents(self, settings: AgentSettings) -> Agents:
        """The agents, checked: a factory that returns something else is named as the fault."""
        built = self.agents(settings)
        if not isinstance(built, Mapping) or not all(isinstance(k, str) for k in built):
            raise InvalidConfiguration(f"agents() returned {type(built).__name__}, not a "
                                       "mapping of agent names to agents")
        for name, agent in built.items():
            missing = [m for m in ("start", "poll", "clear")
                       if not callable(getattr(agent, m, None))]
            if missing:
                raise InvalidConfiguration(f"agents() returned {type(agent).__name__} for "
                                           f"agent {name!r}, which has no {missing[0]}(): an "
                                           "agent has start, poll and clear")
        return Agents(built)

    def engine(self, store: Store, agents: Mapping[str, Agent], *,
               limits: Limits | None = None, lease: WorkerLease | None = None,
               on_commit: Callable[[TickReport], None] | None = None) -> Engine:
        """An engine over `store` with this application's commands and policies."""
        return Engine(store, agents, self.registry, policy=self.policy, retry=self.retry,
                      limits=limits or self.limits, lease=lease, on_commit=on_commit)
