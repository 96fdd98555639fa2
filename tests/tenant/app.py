"""Tenant onboarding as an application, declared as a user declares theirs.

That way the `endaction` command line runs it: `endaction worker --app tests.tenant.app:app`.

Its services live in the worker's process (each worker its own), built from the agent options:
`refuse-tenants=globex,...` makes the certificate authority refuse those tenants' certificates every
time (so their onboarding is rolled back after its retries), and `fail=VERB:MESSAGE,...` makes the
next task of each VERB listed fail with MESSAGE (a refusal a retry gets past).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statemachines import AgentSettings, App, InvalidConfiguration, Limits

from .commands import tenant_registry
from .hosts import Refused, ServiceHost, TenantHosts
from .ledgers import TENANT_LEDGERS

OPTIONS = ("fail", "refuse-tenants")


def tenant_agents(settings: AgentSettings) -> dict[str, ServiceHost]:
    unknown = sorted(set(settings.options) - set(OPTIONS))
    if unknown:
        raise InvalidConfiguration(f"the tenant services know no option {unknown[0]!r} "
                                   f"(only {', '.join(OPTIONS)})")
    fail: dict[str, list[str]] = {}
    for item in filter(None, settings.options.get("fail", "").split(",")):
        verb, sep, message = item.partition(":")
        if not sep or not verb:
            raise InvalidConfiguration(f"fail={item!r}: expected VERB:MESSAGE")
        fail.setdefault(verb, []).append(message)
    refused = {t.strip() for t in settings.options.get("refuse-tenants", "").split(",")
               if t.strip()}
    agents = TenantHosts(fail=fail).agents()
    issue = agents["pki"].handlers["issue_certificate"]

    def issue_unless_refused(parameters: Mapping[str, Any], task_id: str) -> Any:
        tenant = str(parameters["subject"]).split(".", 1)[0]
        if tenant in refused:
            raise Refused(f"the CA refuses tenant {tenant}")
        return issue(parameters, task_id)

    agents["pki"].handlers["issue_certificate"] = issue_unless_refused
    return agents


app = App(
    name="tenant",
    registry=tenant_registry(),
    agents=tenant_agents,
    ledgers=TENANT_LEDGERS,
    limits=Limits(task_timeout=60),
)
