"""Tenant onboarding, written as a user of endaction would write their own domain.

A bucket, a database with two schemas and a user in it, and a certificate, each on its own
agent, in ordered steps that pass data along: the database's connection string and the
bucket's ARN go into the certificate request, the certificate's serial into the tenant's
record. Only the public API is used: `statemachines`, `persistence` and
`statemachines.testing`. The tests in tests/integration/test_tenant_onboarding.py run it.
"""

from .commands import TENANT_COMMANDS, tenant_parameters, tenant_registry
from .hosts import TenantHosts
from .ledgers import TENANT_LEDGERS

__all__ = ["TENANT_COMMANDS", "TENANT_LEDGERS", "TenantHosts", "tenant_parameters",
           "tenant_registry"]
