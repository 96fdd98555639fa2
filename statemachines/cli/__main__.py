"""Lets `python -m statemachines.cli` run the same `endaction` command line as the script.

It serves where the `endaction` console script is not on PATH.
"""

from .main import main

main()
