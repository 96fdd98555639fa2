"""The machines: a command's, a task's and what an agent says of a task.

They are `transitions` tables with their guards, with the ExecutionReason that decides which end
path a command takes.

The diagrams are drawn from these tables, so they import nothing of the engine: what runs and
what is drawn cannot drift apart.
"""
