"""The records and their values: commands, tasks and their history as plain persisted rows.

Beside them are the ids they carry, frozen JSON, each resource's revert state, retry policies
and the limits every value is checked against.

Records move only through the machines (`statemachines.core.machines`); nothing here calls a
store, an agent or a user's code.
"""
