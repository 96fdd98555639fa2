"""BuildTree: a generic command tree of any shape, for the property suite and for trying ideas.

A node may own a resource (an image in the inventory) that its tasks create, may share its
parent's resource instead of owning one (oVirt's parent and child commands often name the same
entity), may start several tasks and may raise at the end of `execute`. Shared resources are
what make the first loop guard necessary: without it the parent reverts a resource its
child's opposite command already removed.

A node may also work in steps (`steps`: the tasks and children of each step after the first),
and each later step's tasks carry what the step before returned (`after`: its tasks' outputs),
so the suite checks that what a host answered reaches the next step, across crashes and
retries (`tree_inputs_problems`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from statemachines import (
    Command,
    CommandContext,
    CommandRegistry,
    Compensation,
    ResourceRef,
    TaskRecord,
    thaw,
)

from .commands import STORAGE_AGENT, VM_COMMANDS, RemoveImage
from .inventory import IMAGE, ImageInventory, ImageRow, ImageStatus
from .verbs import COPY_VERB

# A task of a node without a resource: it touches nothing that could be left behind.
PROBE_VERB = "probe"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_KEYS = {"name", "resource", "shared", "tasks", "raise_in_execute", "children", "steps"}
_STEP_KEYS = {"tasks", "children"}


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
    if not isinstance(node.get("raise_in_execute", False), bool):
        problems.append(f"{where}: 'raise_in_execute' must be true or false")
    problems += _step_problems(node, where, resource if isinstance(resource, str) else None)
    steps = node.get("steps", [])
    if not isinstance(steps, list | tuple) or len(steps) > 5:
        return [*problems, f"{where}: 'steps' must be a list of at most 5 steps"]
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            problems.append(f"{where}.steps[{index}] must be an object")
            continue
        problems += [f"{where}.steps[{index}]: unknown key {k!r}"
                     for k in sorted(set(step) - _STEP_KEYS)]
        problems += _step_problems(step, f"{where}.steps[{index}]",
                                   resource if isinstance(resource, str) else None)
    return problems


def _step_problems(step: Mapping[str, Any], where: str, resource: str | None) -> list[str]:
    """The work of one step: its tasks and its children."""
    problems = []
    tasks = step.get("tasks", 0)
    if not isinstance(tasks, int) or isinstance(tasks, bool) or not 0 <= tasks <= 10:
        problems.append(f"{where}: 'tasks' must be an integer 0..10 (got {tasks!r})")
    children = step.get("children", [])
    if not isinstance(children, list | tuple):
        return [*problems, f"{where}: 'children' must be a list"]
    for index, child in enumerate(children):
        problems += tree_problems(child, f"{where}.children[{index}]", resource)
    return problems


def node_entity(node: Mapping[str, Any]) -> ResourceRef | None:
    """The entity a node's command is made with: its image, owned or shared, if it has one."""
    resource = node.get("resource")
    return ResourceRef(IMAGE, resource) if resource else None


class BuildTree(Command):
    """One node of a generic command tree, whose parameters give its shape (see the module).

    Its resource is an image in the inventory, owned or shared with its parent; its tasks copy
    it, or, for a node without one, probe.
    """

    type_name = "BuildTree"

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        """Every problem with the tree, each naming where it is, refused before it is stored."""
        return tree_problems(parameters)

    @property
    def resource(self) -> str | None:
        """The name of the node's image, owned or shared; None for a node without one."""
        value = self.parameters.get("resource")
        return str(value) if value else None

    @property
    def owns_resource(self) -> bool:
        """Whether the node owns its image, rather than sharing its parent's or having none."""
        return self.resource is not None and not self.parameters.get("shared", False)

    def validate(self, ctx: CommandContext) -> list[str]:
        """Refuse an owned image whose name is already in the inventory: another node made it."""
        if self.owns_resource and self.resource and ctx.ledger(ImageInventory).exists(
                self.resource):
            return [f"image {self.resource!r} already exists in the inventory"]
        return []

    def execute(self, ctx: CommandContext) -> None:
        """Add the owned image's inventory row, then the first step's tasks and children.

        It raises at the end when the node says to (`raise_in_execute`), after starting them.
        """
        resource = self.resource
        if resource is not None and self.owns_resource:
            ctx.ledger(ImageInventory).add(ImageRow(resource, str(self.parameters["name"]),
                                                    self.record.root_id, "tree"))
        self._spawn(ctx, self.parameters, None)
        if self.parameters.get("raise_in_execute", False):
            raise RuntimeError(f"BuildTree {self.parameters['name']} was told to fail")

    def next_step(self, ctx: CommandContext) -> None:
        """The next of its `steps`, its tasks given what the tasks of the step before returned."""
        steps = self.parameters.get("steps", ())
        if ctx.step - 2 < len(steps):
            after = [t.output for t in ctx.tasks if t.step == ctx.step - 1]
            self._spawn(ctx, steps[ctx.step - 2], after)

    def _spawn(self, ctx: CommandContext, step: Mapping[str, Any], after: list[Any] | None
               ) -> None:
        resource = self.resource
        given = {} if after is None else {"after": after}
        for index in range(int(step.get("tasks", 0))):
            if resource is None:
                ctx.start_task(STORAGE_AGENT, PROBE_VERB, {"node": self.parameters["name"],
                                                           "index": index, **given})
            else:
                ctx.start_task(STORAGE_AGENT, COPY_VERB,
                               {"source": "tree", "image": resource, "index": index, **given},
                               entities=[ResourceRef(IMAGE, resource)])
        for child in step.get("children", ()):
            ctx.add_child(self.type_name, child, entity=node_entity(child))

    def end_successfully(self, ctx: CommandContext) -> None:
        """Mark the owned image OK; a shared image is its owner's to mark."""
        if self.resource is not None and self.owns_resource:
            ctx.ledger(ImageInventory).set_status(self.resource, ImageStatus.OK)

    def end_with_failure(self, ctx: CommandContext) -> None:
        """Mark the node's image ILLEGAL, owned or shared, until its revert removes the row."""
        if self.resource is not None:
            ctx.ledger(ImageInventory).set_status(self.resource, ImageStatus.ILLEGAL)

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        """RemoveImage deletes the image, as for a clone: the storage host cannot revert a copy."""
        return Compensation(RemoveImage.type_name, {"image": resource.id})


def tree_inputs_problems(tasks: Iterable[TaskRecord]) -> list[str]:
    """The problems, if a later step's tasks were not given what the step before returned.

    What it returned is the outputs its host answered with (as kept), of its tasks' last
    attempts, in the order they started; the tasks must have been given exactly that.
    """
    by_step: dict[tuple[str, int], list[TaskRecord]] = defaultdict(list)
    every = list(tasks)
    for task in sorted(every, key=lambda t: (t.created_at, t.id)):
        if not task.retried:
            by_step[(task.command_id, task.step)].append(task)
    problems = []
    for task in every:
        if "after" not in task.parameters:
            continue
        before = by_step.get((task.command_id, task.step - 1), [])
        expected = [t.output for t in before]
        if thaw(task.parameters["after"]) != thaw(expected):
            problems.append(f"task {task.id} ({task.verb}, step {task.step}) was given "
                            f"{thaw(task.parameters['after'])!r:.120}, but the step before "
                            f"returned {thaw(expected)!r:.120}")
    return problems


def tree_registry() -> CommandRegistry:
    """BuildTree with the example's commands, RemoveImage being its opposite command."""
    return CommandRegistry((*VM_COMMANDS, BuildTree))
