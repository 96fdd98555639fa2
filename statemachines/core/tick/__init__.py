"""One tick's transactional work, by phase.

The phases: the agents' answers applied, commands started, steps run, end groups ended,
rollbacks settled, operators' requests acted on.

Everything a tick's phases share lives in its `TickState` for one transaction; the engine
(`statemachines.core.engine`) opens that transaction and runs the phases in it.
"""
