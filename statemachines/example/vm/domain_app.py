"""The VM example as an application, apart from the two commands only this domain has.

Those commands (`demo`, `agent serve`) open a world of this application themselves, so they
need it without it needing them: `application.py` is this App with them added, and nothing
here imports the commands (the import graph of the example has no circle).
"""

from __future__ import annotations

from statemachines import App

from .commands import vm_registry
from .demo_report import render_text, vm_leftovers, vm_report
from .inventory import ImageInventory
from .seed_flow import seed_flow_drawing
from .storage_agents import vm_agents

domain_app = App(
    name="vm",
    registry=vm_registry(),
    agents=vm_agents,
    ledgers=(ImageInventory,),
    leftovers=vm_leftovers,
    report=vm_report,
    render_report=render_text,
    drawings=lambda: (seed_flow_drawing(),),
)
