"""The `endaction` command line: the one place that wires statemachines to persistence."""
