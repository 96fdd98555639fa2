"""What users subclass: `Command`, with what it needs around it.

That is its hooks and the context they work through, the registry of command types, and the
revert policy that decides when a failed command gets its opposite command.
"""
