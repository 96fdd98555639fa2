"""The VM example as an application.

It is what `endaction --app statemachines.example.vm:app` runs, and the default when no
`--app` is given.

Declared with the public API only, as a user declares theirs: `domain_app.py` holds the
command types, the agents built from the process's settings (a storage host here or at
`--agent-url`), the inventory ledger, what counts as left behind, the report `resume`
prints and the seed's flow drawing; this adds the two commands that only this domain has
(`demo` and `agent serve`), which open a world of `domain_app` themselves.
"""

from __future__ import annotations

from dataclasses import replace

from .agent_cli import agent
from .demo_cli import demo
from .domain_app import domain_app

app = replace(domain_app, commands=(demo, agent))
