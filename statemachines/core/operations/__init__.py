"""What callers do without an engine of their own.

They submit roots (with submit keys), and ask the engines working on a database to cancel or
clean up.
"""
