"""The engine and what runs it.

Its parts: loading work, ticking, the leases shared between workers, the worker's loop, its
clock, and the application that declares one deployment.
"""
