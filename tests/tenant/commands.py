"""Onboarding a tenant: ordered steps, outputs passed along, retries, one resource per thing.

OnboardTenant takes three steps: a bucket and a database at once; once both exist, a
certificate naming what they returned; then nothing (it ends). CreateDatabase takes two of
its own: the database, then its schemas and its user, which the server refuses before the
database exists. Each resource gets its own opposite command when the tenant fails, undone
last made first (the server refuses to drop a database that still has schemas).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from statemachines import (
    Command,
    CommandContext,
    CommandRecord,
    CommandRegistry,
    Compensation,
    HostResult,
    HostStatus,
    ResourceRef,
    RetryPolicy,
    TaskRecord,
)

from .ledgers import LEDGER_OF, Buckets, Certificates, Databases, Made

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


def tenant_parameters(tenant: str, schemas: tuple[str, ...] = ("app", "audit"),
                      user: str = "app") -> dict[str, Any]:
    return {"tenant": tenant, "schemas": list(schemas), "user": user}


def _one(found: tuple[Any, ...], what: str) -> Any:
    if len(found) != 1:
        raise RuntimeError(f"expected one {what}, found {len(found)}")
    return found[0]


def _child(ctx: CommandContext, type_name: str) -> CommandRecord:
    return _one(tuple(c for c in ctx.children if c.type == type_name), type_name)  # type: ignore[no-any-return]


def _task(ctx: CommandContext, verb: str) -> TaskRecord:
    return _one(tuple(t for t in ctx.tasks if t.verb == verb), verb)  # type: ignore[no-any-return]


class OnboardTenant(Command):
    type_name = "OnboardTenant"

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        problems = []
        if not isinstance(parameters.get("tenant"), str) or not _NAME.match(parameters["tenant"]):
            problems.append(f"'tenant' must be a name (got {parameters.get('tenant')!r})")
        schemas = parameters.get("schemas")
        if not isinstance(schemas, list | tuple) or not all(
                isinstance(s, str) and _NAME.match(s) for s in schemas):
            problems.append("'schemas' must be a list of names")
        return problems

    def execute(self, ctx: CommandContext) -> None:
        """Step 1: the bucket and the database, at once (neither needs the other)."""
        tenant = self.parameters["tenant"]
        ctx.add_child(CreateBucket.type_name, {"bucket": f"{tenant}-data", "tenant": tenant},
                      entity=ResourceRef("bucket", f"{tenant}-data"))
        ctx.add_child(CreateDatabase.type_name,
                      {"database": tenant, "tenant": tenant,
                       "schemas": list(self.parameters["schemas"]),
                       "user": self.parameters.get("user", "app")})

    def next_step(self, ctx: CommandContext) -> None:
        """Step 2: the certificate, for what step 1 made; step 3 starts nothing: the end."""
        if ctx.step != 2:
            return
        tenant = self.parameters["tenant"]
        arn = _child(ctx, CreateBucket.type_name).output["arn"]
        dsn = _child(ctx, CreateDatabase.type_name).output["dsn"]
        subject = f"{tenant}.tenants.example"
        ctx.add_child(IssueCertificate.type_name,
                      {"subject": subject, "tenant": tenant, "bucket_arn": arn, "dsn": dsn},
                      entity=ResourceRef("certificate", subject))

    def end_successfully(self, ctx: CommandContext) -> None:
        ctx.set_output({
            "bucket_arn": _child(ctx, CreateBucket.type_name).output["arn"],
            "dsn": _child(ctx, CreateDatabase.type_name).output["dsn"],
            "certificate": _child(ctx, IssueCertificate.type_name).output["serial"],
        })


class CreateBucket(Command):
    type_name = "CreateBucket"

    def execute(self, ctx: CommandContext) -> None:
        ctx.ledger(Buckets).put(Made(self.parameters["bucket"], self.parameters["tenant"]))
        ctx.start_task("objects", "create_bucket", {"bucket": self.parameters["bucket"]})

    def next_step(self, ctx: CommandContext) -> None:
        """Its task's output, for its parent to read."""
        arn = _task(ctx, "create_bucket").output["arn"]
        ctx.ledger(Buckets).put(Made(self.parameters["bucket"], self.parameters["tenant"], arn))
        ctx.set_output({"arn": arn})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation | None:
        task = _task(ctx, "create_bucket")
        if task.host_status == HostStatus.FINISHED and task.host_result == HostResult.FAILURE:
            # The store refused it: nothing was made, nothing is left to undo.
            ctx.ledger(Buckets).remove(resource.id)
            return None
        return Compensation(DeleteBucket.type_name, {"bucket": resource.id})


class CreateDatabase(Command):
    """Two steps of its own: the database, then its schemas and its user."""

    type_name = "CreateDatabase"

    def execute(self, ctx: CommandContext) -> None:
        database = self.parameters["database"]
        self._made(ctx, ResourceRef("database", database))
        ctx.start_task("postgres", "create_database", {"database": database})

    def next_step(self, ctx: CommandContext) -> None:
        database = self.parameters["database"]
        if ctx.step == 2:
            dsn = _task(ctx, "create_database").output["dsn"]
            ctx.ledger(Databases).put(Made(database, self.parameters["tenant"], dsn))
            ctx.set_output({"dsn": dsn})
            for schema in self.parameters["schemas"]:
                self._made(ctx, ResourceRef("schema", f"{database}.{schema}"))
                ctx.start_task("postgres", "create_schema",
                               {"database": database, "schema": schema})
            user = self.parameters["user"]
            self._made(ctx, ResourceRef("db_user", f"{database}.{user}"))
            ctx.start_task("postgres", "create_user", {"database": database, "user": user})

    def _made(self, ctx: CommandContext, resource: ResourceRef) -> None:
        """Record the resource before the task that makes it starts.

        If the answer is lost, the row is what says there may be something to revert.
        """
        ctx.add_resource(resource)
        ctx.ledger(LEDGER_OF[resource.type]).put(Made(resource.id, self.parameters["tenant"]))

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        database, _, part = resource.id.partition(".")
        if resource.type == "schema":
            return Compensation(DropSchema.type_name, {"database": database, "schema": part})
        if resource.type == "db_user":
            return Compensation(DropUser.type_name, {"database": database, "user": part})
        return Compensation(DropDatabase.type_name, {"database": database})


class IssueCertificate(Command):
    """The certificate authority refuses now and then: tried three times before it fails."""

    type_name = "IssueCertificate"
    retry = RetryPolicy(max_attempts=3, backoff_seconds=1.0)

    def execute(self, ctx: CommandContext) -> None:
        p = self.parameters
        ctx.ledger(Certificates).put(Made(p["subject"], p["tenant"]))
        ctx.start_task("pki", "issue_certificate",
                       {"subject": p["subject"], "bucket_arn": p["bucket_arn"], "dsn": p["dsn"]})

    def next_step(self, ctx: CommandContext) -> None:
        """The serial, for its parent to read, and for the certificate's row."""
        serial = _task(ctx, "issue_certificate").output["serial"]
        ctx.ledger(Certificates).put(Made(self.parameters["subject"], self.parameters["tenant"],
                                          serial))
        ctx.set_output({"serial": serial})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation(RevokeCertificate.type_name, {"subject": resource.id})


class _Undo(Command):
    """An opposite command: one task on one service, while the ledger still has the thing.

    Its row goes once the task succeeded.
    """

    submittable = False
    agent = ""
    verb = ""

    def execute(self, ctx: CommandContext) -> None:
        resource = self._resource()
        if ctx.resource_exists(resource):
            ctx.start_task(self.agent, self.verb, dict(self.parameters))

    def end_with_failure(self, ctx: CommandContext) -> None:
        if ctx.work_succeeded:  # an opposite command only ever ends here
            resource = self._resource()
            ctx.ledger(LEDGER_OF[resource.type]).remove(resource.id)

    def _resource(self) -> ResourceRef:
        assert self.record.entity_type is not None and self.record.entity_id is not None
        return ResourceRef(self.record.entity_type, self.record.entity_id)


class DeleteBucket(_Undo):
    type_name, agent, verb = "DeleteBucket", "objects", "delete_bucket"


class DropDatabase(_Undo):
    type_name, agent, verb = "DropDatabase", "postgres", "drop_database"


class DropSchema(_Undo):
    type_name, agent, verb = "DropSchema", "postgres", "drop_schema"


class DropUser(_Undo):
    type_name, agent, verb = "DropUser", "postgres", "drop_user"


class RevokeCertificate(_Undo):
    type_name, agent, verb = "RevokeCertificate", "pki", "revoke_certificate"


TENANT_COMMANDS: tuple[type[Command], ...] = (
    OnboardTenant, CreateBucket, CreateDatabase, IssueCertificate, DeleteBucket, DropDatabase,
    DropSchema, DropUser, RevokeCertificate)


def tenant_registry() -> CommandRegistry:
    return CommandRegistry(TENANT_COMMANDS)
