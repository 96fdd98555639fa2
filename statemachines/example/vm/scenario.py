"""The property suite pointed at the VM example: images copied and removed on a storage host.

This is what a user writes to run the suite over their own commands: what to submit, what a
finished task does to the world, which resource a task touches, and what counts as left
behind. Run it with `engine_machine(image_scenario(open_store)).TestCase`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from persistence import SqlStore
from statemachines import CommandStatus, RetryPolicy, RevertPolicy, Store
from statemachines.testing import ControlledAgent, Scenario, Snapshot

from .commands import STORAGE_AGENT
from .inventory import ImageInventory
from .scenario_strategies import tree_submissions, unique_names, vm_submissions
from .tree import tree_inputs_problems, tree_registry
from .verbs import COPY_VERB, DELETE_VERB


def image_effect(verb: str, parameters: Mapping[str, Any], resources: set[str]) -> None:
    """What a task that took effect does to the images the suite's storage agent keeps.

    A copy adds its image and a delete discards it; a task with no image changes nothing.
    """
    image = parameters.get("image")
    if not isinstance(image, str):
        return
    if verb == COPY_VERB:
        resources.add(image)
    elif verb == DELETE_VERB:
        resources.discard(image)


def image_of(verb: str, parameters: Mapping[str, Any]) -> str | None:
    """The image a task touches, which the suite reads to make its deletes fail for good."""
    image = parameters.get("image")
    return image if isinstance(image, str) else None


def image_leftovers(snap: Snapshot, agents: Mapping[str, ControlledAgent],
                    store: Store) -> set[str]:
    """Images on the storage or in the inventory that no successfully created tree owns."""
    succeeded = {i for i, c in snap.commands.items()
                 if c.parent_id is None and c.status == CommandStatus.ENDED_SUCCESS}
    root_of_image = {str(t.parameters["image"]): t.root_command_id for t in snap.tasks.values()
                     if t.verb == COPY_VERB and "image" in t.parameters}
    assert isinstance(store, SqlStore), "the VM example keeps its images in a SQL table"
    rows = ImageInventory.read_all(store.engine)
    root_of_image.update((row.id, row.root_id) for row in rows)
    present = {row.id for row in rows}
    for agent in agents.values():
        present |= agent.resources
    return {image for image in present if root_of_image.get(image) not in succeeded}


def task_output(verb: str, parameters: Mapping[str, Any], task_id: str) -> Any:
    """What the controlled host answers with a success: something the task alone could say."""
    return {"task": task_id, "verb": verb}


def tree_checks(snap: Snapshot) -> list[str]:
    """The example's own safety property: a later step got what the step before returned."""
    return tree_inputs_problems(snap.tasks.values())


def image_scenario(open_store: Callable[[Path], Store], *, policy: RevertPolicy | None = None,
                   retry: RetryPolicy | None = None, max_roots: int = 3) -> Scenario:
    """VMs of 1..8 disks and BuildTree trees up to 3 levels deep, on one storage agent.

    A third of the roots are trees with later steps, whose tasks carry what the step before
    returned; the agent answers with outputs, and failed tasks are tried twice (`retry`).
    """
    return Scenario(
        registry=tree_registry,
        submissions=st.one_of(vm_submissions(8), tree_submissions(3),
                              tree_submissions(2, min_steps=1)),
        open_store=open_store,
        agent_names=(STORAGE_AGENT,),
        effect=image_effect,
        resource_of=image_of,
        compensation_verbs=frozenset({DELETE_VERB}),
        leftovers=image_leftovers,
        unique=unique_names,
        output=task_output,
        check=tree_checks,
        policy=policy or RevertPolicy(backoff_seconds=1.0),
        retry=retry or RetryPolicy(max_attempts=2, backoff_seconds=1.0),
        max_steps=4,
        max_depth=5,
        max_roots=max_roots,
        task_timeout=90.0,
    )
