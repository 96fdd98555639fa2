"""What callers do without an engine of their own: submit roots (with submit keys), and ask
the engines working on a database to cancel or clean up.
"""
