"""The `endaction` command line: the commands every application shares.

They work around the App that `--app` names, and are built from `statemachines.toolkit`, as an
application's own commands are.
"""
