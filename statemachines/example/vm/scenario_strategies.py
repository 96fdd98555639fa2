"""Hypothesis strategies for the example's commands: VMs from templates and generic trees.

Names are placeholders; `unique_names` gives the n-th submission of a run its own, because
resource names are not reused inside a run (the compensated-once property counts per root
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
          path: str) -> dict[str, Any]:
    shared = parent_resource is not None and draw(st.booleans())
    owns = not shared and draw(st.booleans())
    resource = parent_resource if shared else (f"img{path}" if owns else None)
    children = []
    if depth < max_depth:
        for index in range(draw(st.integers(min_value=0, max_value=3 if depth == 0 else 2))):
            children.append(draw(_node(depth + 1, max_depth, resource, f"{path}.{index}")))
    return {
        "name": f"n{path}",
        "resource": resource,
        "shared": shared,
        "tasks": draw(st.integers(min_value=0, max_value=2)),
        "raise_in_execute": draw(st.integers(min_value=0, max_value=9)) == 0,
        "children": children,
    }


def tree_size(node: Mapping[str, Any]) -> TreeSize:
    own = TreeSize(1, int(node.get("tasks", 0)), 1 if node.get("resource") else 0)
    for child in node.get("children", ()):
        own = own + tree_size(child)
    return own


def tree_submissions(max_depth: int = 3) -> st.SearchStrategy[Submission]:
    """BuildTree roots: up to `max_depth` levels below the root, several tasks per command,
    resources owned or shared with the parent, and now and then an execute that raises."""
    return _node(0, max_depth, None, "0").map(
        lambda root: Submission(BuildTree.type_name, root, tree_size(root), node_entity(root)))


def _prefixed(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    renamed = dict(node)
    renamed["name"] = f"{prefix}{node['name']}"
    if node.get("resource"):
        renamed["resource"] = f"{prefix}{node['resource']}"
    renamed["children"] = [_prefixed(child, prefix) for child in node.get("children", ())]
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
