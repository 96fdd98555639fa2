"""The engine and what runs it: loading work, ticking, leases shared between workers, the
worker's loop, its clock, and the application that declares one deployment.
"""
