"""The network example as an application: `endaction --app statemachines.example.network:app`.

Declared with the public API only. Its host is a simulation that lives in each process that
runs it (a worker's own pool, DNS server and switch), built from the agent options:

- `refuse=a,b`: leases, DNS names or ports whose tasks fail;
- `down-switches=sw9,sw10`: switches that are down, so that plugging any of their ports fails;
- `polls=N`: polls a task runs for before it ends (default 1).

What it counts as left behind is what its ledgers still record for a root that did not end
successfully: the three tables are the example's bookkeeping of the network's truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from persistence import SqlStore
from statemachines import Agent, AgentSettings, App, CommandStatus, InvalidConfiguration, Store

from .commands import NETWORK_AGENT, network_registry
from .host import NetworkHost
from .ledgers import NETWORK_LEDGERS, DnsRecords, Leases, Ports

OPTIONS = ("refuse", "down-switches", "polls")


def _names(text: str) -> set[str]:
    return {name.strip() for name in text.split(",") if name.strip()}


def network_agents(settings: AgentSettings) -> dict[str, Agent]:
    """The simulated network host, from `--agent-option KEY=VALUE` settings."""
    unknown = sorted(set(settings.options) - set(OPTIONS))
    if unknown:
        raise InvalidConfiguration(f"the network example's host knows no option "
                                   f"{unknown[0]!r} (only {', '.join(OPTIONS)})")
    if settings.url is not None or settings.storage is not None:
        raise InvalidConfiguration("the network example's host runs in this process: it "
                                   "takes no --agent-url or --storage")
    polls = settings.options.get("polls", "1").strip()
    if not polls.isdigit() or int(polls) > 1000:
        raise InvalidConfiguration(f"polls={polls!r}: expected a whole number 0..1000")
    host = NetworkHost(refuse=_names(settings.options.get("refuse", "")), polls=int(polls),
                       down_switches=_names(settings.options.get("down-switches", "")))
    return {NETWORK_AGENT: host}


def network_leftovers(store: Store, agents: Mapping[str, Agent]) -> Sequence[str]:
    """Ledger rows of roots that did not succeed: what a rollback should have reverted."""
    if not isinstance(store, SqlStore):
        return ()
    found = []
    for ledger, kind in ((Leases, "lease"), (DnsRecords, "dns_record"), (Ports, "port")):
        for row in ledger.read_all(store.engine):
            root = store.command(row.root_id)
            if root is None or root.status != CommandStatus.ENDED_SUCCESS:
                key = getattr(row, "lease", None) or getattr(row, "name", None) \
                    or getattr(row, "port", "")
                found.append(f"{kind} {key} of root {row.root_id}"
                             f" ({root.status if root else 'gone'})")
    return found


app = App(
    name="network",
    registry=network_registry(),
    agents=network_agents,
    ledgers=NETWORK_LEDGERS,
    leftovers=network_leftovers,
)
