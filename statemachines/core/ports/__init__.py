"""What the engine needs from outside it, as protocols.

That is a store (`persistence` implements it), the agents that run tasks, and the ledgers an
application keeps of its own resources.

Protocols only: the engine depends on these shapes, never on an adapter.
"""
