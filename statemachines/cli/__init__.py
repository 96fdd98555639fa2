"""The `endaction` command line: the commands every application shares, around the App
that `--app` names; built from `statemachines.toolkit`, as an application's own commands are.
"""
