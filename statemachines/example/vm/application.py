"""The VM example as an application: what `endaction --app statemachines.example.vm:app` runs,
and the default when no `--app` is given.

Declared with the public API only, as a user declares theirs: the command types, the agents
built from the process's settings (a storage host here or at `--agent-url`), the inventory
ledger, what counts as left behind, the report `resume` prints, the seed's flow drawing, and
the two commands that only this domain has (`demo` and `agent serve`).
"""

from __future__ import annotations

from statemachines import App

from .agent_cli import agent
from .commands import vm_registry
from .demo_cli import demo
from .demo_report import render_text, vm_leftovers, vm_report
from .inventory import ImageInventory
from .seed_flow import seed_flow_drawing
from .storage_agents import vm_agents

app = App(
    name="vm",
    registry=vm_registry(),
    agents=vm_agents,
    ledgers=(ImageInventory,),
    leftovers=vm_leftovers,
    report=vm_report,
    render_report=render_text,
    drawings=lambda: (seed_flow_drawing(),),
    commands=(demo, agent),
)
