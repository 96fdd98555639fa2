"""`--app module:attribute`: the application a command runs or reads, loaded by name.

The CLI never imports a domain: it imports the module the user names, as uvicorn and Celery do,
and takes the `App` found there. The default is the VM example, so that the README's demo
commands need no `--app`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..core.engine.application import App
from .errors import UsageProblem

DEFAULT_APP = "statemachines.example.vm:app"
APP_ENVVAR = "ENDACTION_APP"
#: Where the loaded application's spec is kept in the click context, for commands that print
#: a command line to run next (`list`'s next page).
APP_SPEC_META = "endaction.app_spec"
F = TypeVar("F", bound=Callable[..., Any])


def load_app(spec: str) -> App:
    """The App that `spec` ("package.module:attribute", attribute `app` if left out) names.

    The current directory is importable, as it is for `python -m`, so that a user's own
    module next to their shell works without installing it.
    """
    text = spec.strip()
    if not text:
        raise UsageProblem("--app must not be empty (leave it out for the VM example)")
    module_name, _, attribute = text.partition(":")
    attribute = attribute or "app"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")) \
            or not all(part.isidentifier() for part in attribute.split(".")):
        raise UsageProblem(f"--app {spec!r} is not 'module:attribute' (e.g. "
                           f"'{DEFAULT_APP}')")
    found: Any = _import(spec, module_name)
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageProblem(f"--app {spec!r}: {module_name} has no attribute "
                               f"{attribute!r}") from None
    if not isinstance(found, App):
        raise UsageProblem(f"--app {spec!r} is a {type(found).__name__}, not a "
                           "statemachines.App")
    return found


def _import(spec: str, module_name: str) -> Any:
    """The application's module, imported from the current directory too.

    Whatever goes wrong in it raises a UsageProblem saying what, never a traceback.
    """
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise UsageProblem(f"--app {spec!r}: no module named {err.name!r} (is it "
                               "installed, or in the current directory?)") from err
        raise UsageProblem(f"--app {spec!r}: importing {module_name} failed: {err}") from err
    except SystemExit as err:  # sys.exit() at import would end the command unexplained
        raise UsageProblem(f"--app {spec!r}: importing {module_name} called "
                           f"sys.exit({err.code!r})") from err
    except Exception as err:  # the user's module is broken: say where, not a traceback
        raise UsageProblem(f"--app {spec!r}: importing {module_name} raised "
                           f"{type(err).__name__}: {err}") from err


def _load(ctx: click.Context, param: click.Parameter, value: str) -> App:
    # click takes an empty variable for an unset one, which would mean the VM example.
    if ctx.get_parameter_source(param.name or "app") is not click.core.ParameterSource.\
            COMMANDLINE and APP_ENVVAR in os.environ and not os.environ[APP_ENVVAR].strip():
        raise UsageProblem(f"{APP_ENVVAR} is set but empty (unset it for the VM example)")
    ctx.meta[APP_SPEC_META] = value
    return load_app(value)


def app_option(command: F) -> F:
    """The shared `--app` option; the command receives the loaded App as `app`."""
    return click.option(
        "--app", "app", envvar=APP_ENVVAR, show_envvar=True, default=DEFAULT_APP,
        show_default=True, metavar="MODULE:ATTR", callback=_load,
        help="the application whose commands, agents and ledgers to use")(command)


def default_app_spec() -> str:
    """The application the group offers extra commands of: ENDACTION_APP, or the default."""
    return os.environ.get(APP_ENVVAR, "").strip() or DEFAULT_APP
