"""The seed's own flow: AddVmFromTemplate -> CreateCloneOfTemplate per disk -> CopyImage."""

from .vm_commands import (
    EXAMPLE_COMMANDS,
    AddVmFromTemplate,
    CreateCloneOfTemplate,
    RemoveImage,
    add_vm_parameters,
    example_registry,
)

__all__ = [
    "EXAMPLE_COMMANDS",
    "AddVmFromTemplate",
    "CreateCloneOfTemplate",
    "RemoveImage",
    "add_vm_parameters",
    "example_registry",
]
