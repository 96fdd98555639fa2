"""The seed's own flow: AddVmFromTemplate -> CreateCloneOfTemplate per disk -> CopyImage.

Its images live in its own table, kept by `ImageInventory`, a ledger registered with the store
like any user's: `open_store(url, ledgers=[ImageInventory])`. Its storage hosts are here too:
`LocalDiskAgent` (real files, the demo's) and `SimulatedAgent` (in memory, scripted by `Plan`,
for tests). The demo's commands (`demo_cli`) are imported only by the CLI, not from here.
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
from .local_disk import LocalDiskAgent
from .simulated import Plan, SimulatedAgent
from .tree import BuildTree, tree_registry
from .verbs import COPY_VERB, DELETE_VERB

__all__ = [
    "COPY_VERB",
    "DELETE_VERB",
    "IMAGE",
    "STORAGE_AGENT",
    "VM_COMMANDS",
    "AddVmFromTemplate",
    "BuildTree",
    "CreateCloneOfTemplate",
    "ImageInventory",
    "ImageRow",
    "ImageStatus",
    "LocalDiskAgent",
    "Plan",
    "RemoveImage",
    "SimulatedAgent",
    "add_vm_parameters",
    "image_name",
    "tree_registry",
    "vm_registry",
]
