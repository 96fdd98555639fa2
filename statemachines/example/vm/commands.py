"""AddVmFromTemplate and its children, written against the public Command API only.

The storage host cannot revert a copy, so CreateCloneOfTemplate names RemoveImage as its
opposite command; the engine starts it with ROLLBACK_FLOW when the VM creation fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from statemachines import Command, CommandContext, CommandRegistry, Compensation, ResourceRef

from .inventory import IMAGE, ImageInventory, ImageRow, ImageStatus
from .verbs import COPY_VERB, DELETE_VERB

STORAGE_AGENT = "storage"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _name_problem(parameters: Mapping[str, Any], key: str) -> list[str]:
    value = parameters.get(key)
    if not isinstance(value, str) or not _NAME.match(value):
        return [f"{key!r} must be a name of letters, digits, '.', '_' or '-' (got {value!r})"]
    return []


def image_name(vm: str, index: int) -> str:
    """The name AddVmFromTemplate gives the image of the VM's index-th disk."""
    return f"{vm}-disk{index}"


def add_vm_parameters(vm: str, sources: list[str], fail: Iterable[int] = ()) -> dict[str, Any]:
    """Parameters of an AddVmFromTemplate; `fail` marks disks whose copy the agent must fail."""
    failing = set(fail)
    return {
        "vm": vm,
        "disks": [{"source": s, "inject_failure": i in failing} for i, s in enumerate(sources)],
    }


class AddVmFromTemplate(Command):
    """Create a VM from a template: one CreateCloneOfTemplate child per disk.

    The root makes nothing itself; each child copies one template disk into an image of its
    own, named by `image_name`, and reverts it if the VM's creation fails.
    """

    type_name = "AddVmFromTemplate"

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        """The parameters' problems, refused before anything is persisted.

        It needs a VM name and a non-empty list of disks, each an object with a source name
        and, if given, a boolean `inject_failure`.
        """
        problems = _name_problem(parameters, "vm")
        disks = parameters.get("disks")
        if not isinstance(disks, list | tuple) or not disks:
            return [*problems, "'disks' must be a non-empty list"]
        for index, disk in enumerate(disks):
            if not isinstance(disk, Mapping):
                problems.append(f"disks[{index}] must be an object")
                continue
            problems += [f"disks[{index}]: {p}" for p in _name_problem(disk, "source")]
            if not isinstance(disk.get("inject_failure", False), bool):
                problems.append(f"disks[{index}]: 'inject_failure' must be true or false")
        return problems

    def execute(self, ctx: CommandContext) -> None:
        """Add one CreateCloneOfTemplate child per disk, its entity the image it makes."""
        vm = self.parameters["vm"]
        for index, disk in enumerate(self.parameters["disks"]):
            image = image_name(vm, index)
            ctx.add_child(
                CreateCloneOfTemplate.type_name,
                {
                    "vm": vm,
                    "source": disk["source"],
                    "image": image,
                    "inject_failure": bool(disk.get("inject_failure", False)),
                },
                entity=ResourceRef(IMAGE, image),
            )


class CreateCloneOfTemplate(Command):
    """Copy one template disk into a new image on the storage host.

    Its inventory row is the image's existence guard; as the host cannot revert a copy, its
    revert is a RemoveImage.
    """

    type_name = "CreateCloneOfTemplate"

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        """The parameters' problems: the VM, the source and the image must each be a name."""
        return [
            *_name_problem(parameters, "vm"),
            *_name_problem(parameters, "source"),
            *_name_problem(parameters, "image"),
        ]

    @property
    def image(self) -> str:
        """The name of the image this command makes."""
        return str(self.parameters["image"])

    def validate(self, ctx: CommandContext) -> list[str]:
        """Refuse an image whose name is already in the inventory: another command made it."""
        if ctx.ledger(ImageInventory).exists(self.image):
            return [f"image {self.image!r} already exists in the inventory"]
        return []

    def execute(self, ctx: CommandContext) -> None:
        """Start the copy, after the inventory row that lets a rollback find a partial file."""
        # The inventory row goes in before the copy starts: if the copy leaves a partial file,
        # the row is what tells the engine there is something to remove (ImageInventory is
        # the existence guard of resources of type "image").
        ctx.ledger(ImageInventory).add(ImageRow(self.image, self.parameters["vm"],
                                                self.record.root_id, self.parameters["source"]))
        ctx.start_task(
            STORAGE_AGENT,
            COPY_VERB,
            {"source": self.parameters["source"], "image": self.image,
             "inject_failure": bool(self.parameters.get("inject_failure", False))},
            entities=[ResourceRef(IMAGE, self.image)],
        )

    def end_successfully(self, ctx: CommandContext) -> None:
        """Mark the image OK in the inventory: the VM's creation succeeded."""
        ctx.ledger(ImageInventory).set_status(self.image, ImageStatus.OK)

    def end_with_failure(self, ctx: CommandContext) -> None:
        """Mark the image ILLEGAL in the inventory, until its revert removes the row."""
        ctx.ledger(ImageInventory).set_status(self.image, ImageStatus.ILLEGAL)

    def revert(self, ctx: CommandContext, resource: ResourceRef) -> Compensation:
        """The storage host cannot revert a copy: RemoveImage deletes the image instead."""
        return Compensation(RemoveImage.type_name, {"image": resource.id})


class RemoveImage(Command):
    """The opposite of CreateCloneOfTemplate; acts only while the image is in the inventory."""

    type_name = "RemoveImage"
    submittable = False

    @classmethod
    def check_parameters(cls, parameters: Mapping[str, Any]) -> list[str]:
        """The parameters' problems: the image must be a name."""
        return _name_problem(parameters, "image")

    @property
    def image(self) -> str:
        """The name of the image this command removes."""
        return str(self.parameters["image"])

    def execute(self, ctx: CommandContext) -> None:
        """Start the delete if the image is still in the inventory; if not, nothing is left."""
        if not ctx.ledger(ImageInventory).exists(self.image):
            return
        ctx.start_task(STORAGE_AGENT, DELETE_VERB, {"image": self.image},
                       entities=[ResourceRef(IMAGE, self.image)])

    def end_successfully(self, ctx: CommandContext) -> None:
        """Drop the image's row, had it run as regular work.

        As an opposite command it never ends here, but in `end_with_failure`.
        """
        ctx.ledger(ImageInventory).remove(self.image)

    def end_with_failure(self, ctx: CommandContext) -> None:
        """Drop the image's row once the delete succeeded; a failed delete keeps it.

        The row kept is what lets a later cleanup try the revert again.
        """
        # As an opposite command this is the only path it can take; its own success shows in
        # work_succeeded and is recorded by the engine as the resource being reverted.
        if ctx.work_succeeded:
            ctx.ledger(ImageInventory).remove(self.image)


VM_COMMANDS: tuple[type[Command], ...] = (
    AddVmFromTemplate, CreateCloneOfTemplate, RemoveImage)


def vm_registry() -> CommandRegistry:
    """The VM example's commands, ready for an Engine."""
    return CommandRegistry(VM_COMMANDS)
