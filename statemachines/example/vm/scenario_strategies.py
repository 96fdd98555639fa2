"""Hypothesis strategies for the example's commands: VMs from templates and generic trees.

Names are placeholders; `unique_names` gives the n-th submission of a run its own, because
resource names are not reused inside a run (the reverted-once property counts per root
and name, and a name reused across roots would be refused by validate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from statemachines.testing import Submission, TreeSize

from .commands import AddVmFromTemplate, add_vm_parameters
from .tree import BuildTree, node_entity


def vm_submissions(max_disks: int = 8) -> st.SearchStrategy[Submission]:
    """AddVmFromTemplate with 1..max_disks disks; the agent decides how each copy goes."""
    return st.integers(min_value=1, max_value=max_disks).map(
        lambda disks: Submission(
            AddVmFromTemplate.type_name,
            add_vm_parameters("vm", [f"template-disk{i}" for i in range(disks)]),
            TreeSize(commands=1 + disks, tasks=disks, resources=disks)))


@st.composite
def _node(draw: st.DrawFn, depth: int, max_depth: int, parent_resource: str | None,
          path: str, min_steps: int = 0) -> dict[str, Any]:
    shared = parent_resource is not None and draw(st.booleans())
    owns = not shared and draw(st.booleans())
    resource = parent_resource if shared else (f"img{path}" if owns else None)
    children = []
    if depth < max_depth:
        for index in range(draw(st.integers(min_value=0, max_value=3 if depth == 0 else 2))):
            children.append(draw(_node(depth + 1, max_depth, resource, f"{path}.{index}")))
    steps = []
    for number in range(draw(st.integers(min_value=min_steps, max_value=2))):
        later = []
        if depth < max_depth and draw(st.integers(min_value=0, max_value=2)) == 0:
            later.append(draw(_node(depth + 1, max_depth, resource, f"{path}s{number}")))
        steps.append({"tasks": draw(st.integers(min_value=0, max_value=2)), "children": later})
    return {
        "name": f"n{path}",
        "resource": resource,
        "shared": shared,
        # A root meant to take later steps starts something in its first: a step that
        # starts nothing is the last.
        "tasks": draw(st.integers(min_value=1 if min_steps else 0, max_value=2)),
        "raise_in_execute": draw(st.integers(min_value=0, max_value=9)) == 0,
        "children": children,
        "steps": steps,
    }


def tree_size(node: Mapping[str, Any]) -> TreeSize:
    """How big a BuildTree node's tree can grow, known from its parameters alone.

    It counts the commands, the tasks and the commands with a resource, the children's and
    the later steps' included: the suite bounds a run's ticks by it.
    """
    own = TreeSize(1, int(node.get("tasks", 0)), 1 if node.get("resource") else 0)
    for child in node.get("children", ()):
        own = own + tree_size(child)
    for step in node.get("steps", ()):
        own = own + TreeSize(0, int(step.get("tasks", 0)), 0)
        for child in step.get("children", ()):
            own = own + tree_size(child)
    return own


def tree_submissions(max_depth: int = 3, min_steps: int = 0) -> st.SearchStrategy[Submission]:
    """BuildTree roots, up to `max_depth` levels below the root.

    They have several tasks per command, resources owned or shared with the parent, up to two
    later steps per command (with their own tasks and now and then a child; the root takes at
    least `min_steps`), and now and then an execute that raises.
    """
    return _node(0, max_depth, None, "0", min_steps).map(
        lambda root: Submission(BuildTree.type_name, root, tree_size(root), node_entity(root)))


def _prefixed(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    renamed = dict(node)
    renamed["name"] = f"{prefix}{node['name']}"
    if node.get("resource"):
        renamed["resource"] = f"{prefix}{node['resource']}"
    renamed["children"] = [_prefixed(child, prefix) for child in node.get("children", ())]
    renamed["steps"] = [{**step, "children": [_prefixed(c, prefix)
                                              for c in step.get("children", ())]}
                        for step in node.get("steps", ())]
    return renamed


def unique_names(submission: Submission, index: int) -> Submission:
    """The n-th submission of a run, with names no other submission of the run uses."""
    parameters = dict(submission.parameters)
    if submission.type_name == AddVmFromTemplate.type_name:
        parameters["vm"] = f"vm{index}"
        return replace(submission, parameters=parameters)
    if submission.type_name == BuildTree.type_name:
        parameters = _prefixed(parameters, f"r{index}-")
        return replace(submission, parameters=parameters, entity=node_entity(parameters))
    return submission
