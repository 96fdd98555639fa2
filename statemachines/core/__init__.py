"""The core: records, the machines, the Command API, the engine and its ports (store, agents).

It imports no SQL, no CLI toolkit and no test framework; adapters (`persistence`,
`statemachines.diagrams`) and entry points (`statemachines.cli`, `statemachines.testing`,
`statemachines.example`) build on it, never the other way round.
"""
