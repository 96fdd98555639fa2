"""An application opened on a database, and closed in the reverse order.

It holds its store, its agents built from the settings, and an engine; they are closed in the
reverse order, whatever failed in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from persistence import SqlStore
from persistence.schema_version import NoSchema

from ..core.engine.application import Agents, App
from ..core.engine.engine import Engine
from ..core.engine.leases import WorkerLease
from ..core.errors import EndactionError, InvalidConfiguration
from ..core.ports.agent_protocol import Agent
from ..core.records.limits import Limits
from ..core.records.tick_report import TickReport
from ..observability import TracingUnavailable, configure_tracing, traced
from .agent_options import AgentChoice
from .database import open_database
from .errors import UsageProblem


@dataclass
class AppWorld:
    """What a CLI command works with once `open_app` has opened everything.

    `agents` are the ones the application built (the leftover checks and reports read them);
    the engine may run on proxies of them.
    """

    app: App
    store: SqlStore
    agents: Agents
    engine: Engine

    def close(self) -> None:
        """Close the agents, then the store: it is disposed of even if an agent fails to close."""
        try:
            self.agents.close()
        finally:
            self.store.dispose()


def open_app(app: App, db: str | None, agents_at: AgentChoice, *, create: bool = True,
             missing: str = "", limits: Limits | None = None, lease: WorkerLease | None = None,
             on_commit: Callable[[TickReport], None] | None = None,
             engine_agents: Callable[[Agents], Mapping[str, Agent]] | None = None) -> AppWorld:
    """Open `app` on `db`; with create=False a missing database is an error, not a new one.

    `engine_agents` gives the engine other agents than those built (proxies that time each
    call, `EngineMetrics.meter`); the world's own `agents` stay the built ones, which the
    leftover checks and reports read as the application's own classes.

    Its engine emits the trace of every root it ends when OTEL_TRACES_EXPORTER asks for
    traces (or a tracer provider is set in the process): see `statemachines.observability`.
    """
    try:
        configure_tracing()
    except TracingUnavailable as err:
        raise UsageProblem(str(err)) from err
    try:
        store = open_database(db, create=create, missing=missing, app=app)
    except NoSchema as err:
        raise UsageProblem(f"{err}: {missing}" if missing else str(err)) from err
    try:
        agents = app.build_agents(agents_at.settings(store, creating=create))
    except InvalidConfiguration as err:
        store.dispose()
        raise UsageProblem(f"application {app.name!r}: {err}") from err
    except EndactionError:
        store.dispose()
        raise
    except SystemExit as err:
        store.dispose()
        raise UsageProblem(f"application {app.name!r}: its agents function called "
                           f"sys.exit({err.code!r})") from err
    except Exception as err:  # the application's own code failed: name it, no traceback
        store.dispose()
        raise UsageProblem(f"application {app.name!r}: its agents function raised "
                           f"{type(err).__name__}: {err}") from err
    except BaseException:
        store.dispose()
        raise
    try:
        engine = app.engine(store, agents if engine_agents is None else engine_agents(agents),
                            limits=limits, lease=lease, on_commit=traced(store, on_commit))
    except InvalidConfiguration as err:
        agents.close()
        store.dispose()
        raise UsageProblem(f"application {app.name!r}: {err}") from err
    except BaseException:
        agents.close()
        store.dispose()
        raise
    return AppWorld(app, store, agents, engine)


