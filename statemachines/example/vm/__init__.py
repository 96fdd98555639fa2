"""The seed's own flow: AddVmFromTemplate -> CreateCloneOfTemplate per disk -> CopyImage.

Its images live in its own table, kept by `ImageInventory`, a ledger registered with the store
like any user's: `open_store(url, ledgers=[ImageInventory])`. Its storage hosts are here too:
`LocalDiskAgent` (real files, the demo's) and `SimulatedAgent` (in memory, scripted by `Plan`,
for tests). Its application, `app` (what `endaction --app statemachines.example.vm:app` runs,
and the default), is loaded only when asked for: it brings the command line's `demo` with it.
"""

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name == "app":
        from .application import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
