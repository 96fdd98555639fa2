"""The seed's own flow: AddVmFromTemplate -> CreateCloneOfTemplate per disk -> CopyImage.

Its images live in its own table, kept by `ImageInventory`, a ledger registered with the store
like any user's: `open_store(url, ledgers=[ImageInventory])`.
"""

from .commands import (
    STORAGE_AGENT,
    VM_COMMANDS,
    AddVmFromTemplate,
    CreateCloneOfTemplate,
    RemoveImage,
    add_vm_parameters,
    image_name,
    vm_registry,
)
from .inventory import IMAGE, ImageInventory, ImageRow, ImageStatus
from .tree import BuildTree, tree_registry

__all__ = [
    "IMAGE",
    "STORAGE_AGENT",
    "VM_COMMANDS",
    "AddVmFromTemplate",
    "BuildTree",
    "CreateCloneOfTemplate",
    "ImageInventory",
    "ImageRow",
    "ImageStatus",
    "RemoveImage",
    "add_vm_parameters",
    "image_name",
    "tree_registry",
    "vm_registry",
]
