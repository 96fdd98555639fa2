"""A small domain that ships with nothing, with a leak planted in its opposite command.

The leak is what the property kit must find, and shrink to a short readable counterexample, in
a user's time.

A root makes buckets, one child per bucket; a bucket's opposite command deletes it. With
`leak=True` the delete names another bucket than the one it reverts, so every rollback of a
bucket that was made leaves it on the store, though the ledger forgets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, String, Table

from persistence import SqlStore, TableLedger, open_store
from statemachines import (
    Command,
    CommandContext,
    CommandRegistry,
    CommandStatus,
    Compensation,
    ResourceRef,
    Store,
)
from statemachines.testing import ControlledAgent, Scenario, Snapshot, Submission, TreeSize

AGENT = "objects"
MAKE, DELETE = "make_bucket", "delete_bucket"


@dataclass(frozen=True)
class Bucket:
    """A row of the ledger: a bucket, and the root whose tree made it (its owner, for leftovers)."""

    name: str
    root_id: str


class Buckets(TableLedger[Bucket]):
    """The ledger of buckets: the existence guard asks it whether a bucket is still there."""

    resource_type = "bucket"
    table = Table("buckets", MetaData(), Column("name", String(100), primary_key=True),
                  Column("root_id", String(64)))
    row_type = Bucket


class CreateBuckets(Command):
    """The root: one CreateBucket child per name, all of them in one end group with it."""

    type_name = "CreateBuckets"

    def execute(self, ctx: CommandContext) -> None:
        """Add one child per name in `names`, each with its bucket as its entity."""
        for name in self.parameters["names"]:
            ctx.add_child("CreateBucket", {"name": name}, entity=ResourceRef("bucket", name))


class CreateBucket(Command):
    """One bucket: written to the ledger, then made by a task on the objects agent."""

    type_name = "CreateBucket"

    def execute(self, ctx: CommandContext) -> None:
        """Put the bucket in the ledger and start the task that makes it on the objects agent."""
        ctx.ledger(Buckets).put(Bucket(self.parameters["name"], self.record.root_id))
        ctx.start_task(AGENT, MAKE, {"bucket": self.parameters["name"]})

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        """Revert a bucket with DeleteBucket (or the leaky one the registry holds) on its name."""
        return Compensation("DeleteBucket", {"name": resource.id})


class DeleteBucket(Command):
    """The opposite command of CreateBucket: deletes the bucket, then forgets it in the ledger."""

    type_name = "DeleteBucket"
    submittable = False
    leak = False

    def execute(self, ctx: CommandContext) -> None:
        """Start the delete task: on the bucket named, or with `leak` on another bucket."""
        name = self.parameters["name"]
        ctx.start_task(AGENT, DELETE, {"bucket": f"{name}.old" if self.leak else name})

    def end_with_failure(self, ctx: CommandContext) -> None:
        """Forget the bucket in the ledger, but only if the delete succeeded."""
        if ctx.work_succeeded:
            ctx.ledger(Buckets).remove(self.parameters["name"])


class LeakyDeleteBucket(DeleteBucket):
    """The planted leak: a DeleteBucket whose task deletes another bucket than its own."""

    leak = True


def effect(verb: str, parameters: Mapping[str, Any], resources: set[str]) -> None:
    """What a task that took effect does on the agent: a make adds its bucket, a delete drops it."""
    if verb == MAKE:
        resources.add(str(parameters["bucket"]))
    elif verb == DELETE:
        resources.discard(str(parameters["bucket"]))


def resource_of(verb: str, parameters: Mapping[str, Any]) -> str | None:
    """The bucket a task touches, so the kit can make one bucket's delete fail for good."""
    return str(parameters["bucket"]) if "bucket" in parameters else None


def leftovers(snap: Snapshot, agents: Mapping[str, ControlledAgent], store: Store) -> set[str]:
    """Buckets on the store or in the ledger that no root which succeeded owns."""
    assert isinstance(store, SqlStore)
    succeeded = {i for i, c in snap.commands.items()
                 if c.parent_id is None and c.status == CommandStatus.ENDED_SUCCESS}
    owner = {str(t.parameters["bucket"]): t.root_command_id for t in snap.tasks.values()
             if t.verb == MAKE}
    rows = Buckets.read_all(store.engine)
    owner.update((b.name, b.root_id) for b in rows)
    present = {b.name for b in rows}.union(*(agent.resources for agent in agents.values()))
    return {name for name in present if owner.get(name) not in succeeded}


def _buckets(count: int) -> Submission:
    return Submission("CreateBuckets", {"names": [f"b{i}" for i in range(count)]},
                      TreeSize(commands=1 + count, tasks=count, resources=count))


def _unique(submission: Submission, index: int) -> Submission:
    names = [f"r{index}-{name}" for name in submission.parameters["names"]]
    return replace(submission, parameters={"names": names})


def _sqlite(folder: Path) -> Store:
    return open_store(str(folder / "buckets.db"), ledgers=[Buckets])


def scenario(leak: bool) -> Scenario:
    """The property kit's scenario for this domain: roots of 1 to 3 buckets, leaky if `leak`."""
    delete = LeakyDeleteBucket if leak else DeleteBucket
    return Scenario(
        registry=lambda: CommandRegistry([CreateBuckets, CreateBucket, delete]),
        submissions=st.integers(min_value=1, max_value=3).map(_buckets),
        open_store=_sqlite,
        agent_names=(AGENT,),
        effect=effect,
        resource_of=resource_of,
        compensation_verbs=frozenset({DELETE}),
        leftovers=leftovers,
        unique=_unique,
    )
