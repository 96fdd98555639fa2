"""The core, in rooms by concept, each importing only the rooms below it.

From the bottom up:

- `machines`: the command, task and host-status machines, and ExecutionReason;
- `records`: commands, tasks and history as plain records, and the values they hold;
- `ports`: the protocols of what plugs in: the store, agents, ledgers;
- `commands`: what users subclass (Command, its context, the revert policy);
- `tick`: one tick's transactional work, phase by phase;
- `operations`: what callers do without an engine (submit, cancel and cleanup requests);
- `engine`: the engine that loads work and runs ticks, leases, the worker, the application.

`errors` is every room's. The core imports no SQL, no CLI toolkit and no test framework;
adapters (`persistence`, `statemachines.diagrams`) and entry points (`statemachines.cli`,
`statemachines.testing`, `statemachines.example`) build on it, never the other way round.
`statemachines` is the import surface; these paths are the library's own.
"""
