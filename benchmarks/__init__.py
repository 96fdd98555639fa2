"""The benchmark harness: `python -m benchmarks rollback | compare | recover | floor`.

Figures come from benchmark runs, never from timed unit tests; every run happens in a process
of its own so that its peak memory is its own.
"""
