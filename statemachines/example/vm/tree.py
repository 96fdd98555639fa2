"""BuildTree: a generic command tree of any shape, for the property suite and for trying ideas.

A node may own a resource (an image in the inventory) that its tasks create, may share its
parent's resource instead of owning one (oVirt's parent and child commands often name the same
entity), may start several tasks and may raise at the end of `execute`. Shared resources are
what make the first loop guard necessary: without it the parent compensates a resource its
child's opposite command already removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from statemachines import Command, CommandContext, CommandRegistry, Compensation, ResourceRef

from .commands import STORAGE_AGENT, VM_COMMANDS, RemoveImage
from .inventory import IMAGE, ImageInventory, ImageRow, ImageStatus
from .verbs import COPY_VERB

# A task of a node without a resource: it touches nothing that could be left behind.
PROBE_VERB = "probe"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_KEYS = {"name", "resource", "shared", "tasks", "raise_in_execute", "children"}


_TOP = object()  # checking a node on its own: its parent, and so what it may share, is unknown


def tree_problems(node: Any, where: str = "tree", parent_resource: object = _TOP) -> list[str]:
    """Every problem with a BuildTree node and its descendants, each naming where it is."""
    if not isinstance(node, Mapping):
        return [f"{where} must be an object"]
    problems = [f"{where}: unknown key {k!r}" for k in sorted(set(node) - _KEYS)]
    if not isinstance(node.get("name"), str) or not _NAME.match(node["name"]):
        problems.append(f"{where}: 'name' must be a name (got {node.get('name')!r})")
    resource = node.get("resource")
    if resource is not None and (not isinstance(resource, str) or not _NAME.match(resource)):
        problems.append(f"{where}: 'resource' must be a name or null (got {resource!r})")
    shared = node.get("shared", False)
    if not isinstance(shared, bool):
        problems.append(f"{where}: 'shared' must be true or false")
    elif shared and (resource is None or parent_resource not in (_TOP, resource)):
        problems.append(f"{where}: a shared resource must be the parent's ({parent_resource!r})")
    tasks = node.get("tasks", 0)
    if not isinstance(tasks, int) or isinstance(tasks, bool) or not 0 <= tasks <= 10:
        problems.append(f"{where}: 'tasks' must be an integer 0..10 (got {tasks!r})")
    if not isinstance(node.get("raise_in_execute", False), bool):
        problems.append(f"{where}: 'raise_in_execute' must be true or false")
    children = node.get("children", [])
    if not isinstance(children, list | tuple):
        return [*problems, f"{where}: 'children' must be a list"]
    for index, child in enumerate(children):
        problems += tree_problems(child, f"{where}.children[{index}]",
                                  resource if isinstance(resource, str) else None)
    return problems


def node_entity(node: Mapping[str, Any]) -> ResourceRef | None:
    resource = node.get("resource")
    return ResourceRef(IMAGE, resource) if resource else None


class BuildTree(Command):
    type_name = "BuildTree"

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        return tree_problems(parameters)

    @property
    def resource(self) -> str | None:
        value = self.parameters.get("resource")
        return str(value) if value else None

    @property
    def owns_resource(self) -> bool:
        return self.resource is not None and not self.parameters.get("shared", False)

    def validate(self, ctx: CommandContext) -> list[str]:
        if self.owns_resource and self.resource and ctx.ledger(ImageInventory).exists(
                self.resource):
            return [f"image {self.resource!r} already exists in the inventory"]
        return []

    def execute(self, ctx: CommandContext) -> None:
        resource = self.resource
        if resource is not None and self.owns_resource:
            ctx.ledger(ImageInventory).add(ImageRow(resource, str(self.parameters["name"]),
                                                    self.record.root_id, "tree"))
        for index in range(int(self.parameters.get("tasks", 0))):
            if resource is None:
                ctx.start_task(STORAGE_AGENT, PROBE_VERB, {"node": self.parameters["name"],
                                                           "index": index})
            else:
                ctx.start_task(STORAGE_AGENT, COPY_VERB,
                               {"source": "tree", "image": resource, "index": index},
                               entities=[ResourceRef(IMAGE, resource)])
        for child in self.parameters.get("children", ()):
            ctx.add_child(self.type_name, child, entity=node_entity(child))
        if self.parameters.get("raise_in_execute", False):
            raise RuntimeError(f"BuildTree {self.parameters['name']} was told to fail")

    def end_successfully(self, ctx: CommandContext) -> None:
        if self.resource is not None and self.owns_resource:
            ctx.ledger(ImageInventory).set_status(self.resource, ImageStatus.OK)

    def end_with_failure(self, ctx: CommandContext) -> None:
        if self.resource is not None:
            ctx.ledger(ImageInventory).set_status(self.resource, ImageStatus.ILLEGAL)

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        return Compensation(RemoveImage.type_name, {"image": resource.id})


def tree_registry() -> CommandRegistry:
    """BuildTree with the example's commands, RemoveImage being its opposite command."""
    return CommandRegistry((*VM_COMMANDS, BuildTree))
