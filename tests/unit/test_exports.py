"""Each package's public names, pinned: a change to an export list is a deliberate one.

What a user needs to write commands, agents and a store-backed engine comes from
`statemachines`; the shipped agents, the SQL store, the property suite and the examples each
from their own package; the machines and the engine's parts from `statemachines.core`.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

EXPORTS = {
    "statemachines": [
        "Abortable", "Agent", "AgentError", "AgentSettings", "AgentUnreachable", "App",
        "Command",
        "CommandContext", "CommandRecord",
        "CommandRegistry", "CommandStatus", "Compensation", "ConcurrentModification",
        "EndactionError", "Engine", "EngineDidNotSettle", "ExecutionReason", "FrozenMap",
        "InvalidConfiguration", "HistoryEntry",
        "HistoryPath",
        "HostResult", "HostStatus", "InvalidParameters", "LeaseLost", "Ledger", "Limits",
        "MissingExtra", "NotCancellable", "NotSubmittable",
        "Outcome", "ResourceRef", "ResourceRevert", "RetryPolicy", "RevertPolicy", "RevertState",
        "Store",
        "StoreError", "StoreUnavailable", "SubmitKeyConflict", "TaskRecord", "TaskRejected",
        "TaskReport",
        "TaskStatus", "TickReport", "UnknownCommandType", "Worker", "WorkerLease",
        "WorkersHoldRoots", "submit_root", "submit_roots", "thaw",
    ],
    "statemachines.http": ["PROTOCOL_VERSION", "ClientTls", "ConnectionBook", "HostLimits",
                           "HttpAgent",
                           "ServerTls", "host_app", "openapi_document", "uvicorn_options"],
    "persistence": ["NoSchema", "NotAnEndactionDatabase", "SchemaMismatch", "SqlLedger",
                    "SqlStore", "TableLedger", "connect", "normalise_url", "open_store"],
    "statemachines.testing": [
        "AgentCrash", "Bounds", "ControlledAgent", "Effect", "ManualClock", "Output", "Scenario",
        "Snapshot", "StepChecker", "Submission", "TreeSize", "check_outputs", "check_quiescent",
        "check_revert_progress", "check_safety", "engine_machine", "fail_on", "kit_settings",
        "measure",
        "multiset_less", "no_effect", "no_output", "revert_failed_resources", "take_snapshot",
        "tick_bound",
    ],
    "statemachines.toolkit": [
        "DEFAULT_HOME", "AgentChoice", "Progress", "UsageProblem", "agent_options", "db_option",
        "describe", "finite", "generic_report", "json_option", "logged", "make_progress",
        "open_app", "require_extra", "run_exit_status",
    ],
    "statemachines.example.vm": [
        "COPY_VERB", "DELETE_VERB", "IMAGE", "STORAGE_AGENT", "VM_COMMANDS",
        "AddVmFromTemplate", "BuildTree", "CreateCloneOfTemplate", "ImageInventory", "ImageRow",
        "ImageStatus", "LocalDiskAgent", "Plan", "RemoveImage", "SimulatedAgent",
        "add_vm_parameters", "image_name", "tree_registry", "vm_registry",
    ],
    "statemachines.example.network": [
        "NETWORK_AGENT", "NETWORK_COMMANDS", "NETWORK_LEDGERS", "DeleteDnsRecord",
        "DnsRecords", "Leases", "NetworkHost", "Ports", "ProvisionEndpoint", "ReleaseAddress",
        "UnplugPort", "app", "endpoint_parameters", "network_registry",
    ],
}


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_the_export_list_is_the_pinned_one(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(EXPORTS[package])
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_every_public_class_and_function_says_what_it_is_for(package: str) -> None:
    module = importlib.import_module(package)
    undocumented = []
    for name in module.__all__:
        value = getattr(module, name)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
            undocumented.append(name)
    assert undocumented == []


def test_the_engine_shows_an_example() -> None:
    from statemachines import Engine

    assert "For example::" in (Engine.__doc__ or "")
