"""The options that say where an application's agents are, gathered as one `AgentChoice`.

The options are `--storage`, `--agent-url`, `--agent-token-file` and
`--agent-option KEY=VALUE`.

They mean what the application's `agents` function makes of them; the CLI only checks that
they do not contradict each other and hands them over as `AgentSettings`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from ..core.engine.application import AgentSettings
from ..core.ports.store_protocol import Store
from .errors import UsageProblem

F = TypeVar("F", bound=Callable[..., Any])
STORAGE_HELP = ("directory of an agent that runs in this process, for an application whose "
                "agents keep files (the VM example's storage) "
                "[default: ./endaction-data/storage]")


@dataclass(frozen=True)
class AgentChoice:
    """Where the agents run: in this process (over `storage`), or behind `url`."""

    storage: Path | None = None
    url: str | None = None
    token_file: Path | None = None
    options: dict[str, str] = field(default_factory=dict)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def settings(self, store: Store, *, creating: bool) -> AgentSettings:
        """The choice as the application's `agents` function receives it, over `store`.

        `creating` says whether the command may create the database (see `AgentSettings`).
        """
        return AgentSettings(store=store, url=self.url, token_file=self.token_file,
                             storage=self.storage, options=dict(self.options),
                             creating=creating, ca_file=self.ca_file,
                             cert_file=self.cert_file, key_file=self.key_file)


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def _options(values: tuple[str, ...]) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--agent-option")
        chosen[key.strip()] = text
    return chosen


def agent_options(command: F) -> F:
    """The agent options, handed to the command as `agents_at` (an AgentChoice)."""

    @functools.wraps(command)
    def with_agents(*args: Any, storage: str | None, agent_url: str | None,
                    agent_token_file: str | None, agent_option: tuple[str, ...],
                    agent_ca: str | None, agent_cert: str | None, agent_key: str | None,
                    **kwargs: Any) -> Any:
        # Taken as text: an empty value would become Path("."), the current directory.
        for name, value in (("--storage", storage), ("--agent-token-file", agent_token_file),
                            ("--agent-ca", agent_ca), ("--agent-cert", agent_cert),
                            ("--agent-key", agent_key)):
            if value is not None and not value.strip():
                raise UsageProblem(f"{name} must not be empty (leave it out for the default)")
        if agent_url is not None and not agent_url.strip():
            raise UsageProblem("--agent-url must not be empty")
        if agent_url is not None and storage is not None:
            raise UsageProblem("--storage names a host in this process and --agent-url one "
                               "in another: give one of them")
        if agent_token_file is not None and agent_url is None:
            raise UsageProblem("--agent-token-file goes with --agent-url")
        tls = (agent_ca, agent_cert, agent_key)
        if any(v is not None for v in tls) and (agent_url is None
                                                 or not agent_url.lower().startswith("https://")):
            raise UsageProblem("--agent-ca, --agent-cert and --agent-key go with an https:// "
                               "--agent-url")
        if (agent_cert is None) != (agent_key is None):
            raise UsageProblem("--agent-cert and --agent-key go together")
        choice = AgentChoice(_path(storage), agent_url, _path(agent_token_file),
                             _options(agent_option), ca_file=_path(agent_ca),
                             cert_file=_path(agent_cert), key_file=_path(agent_key))
        return command(*args, agents_at=choice, **kwargs)

    options = [
        click.option("--storage", type=click.Path(file_okay=False),
                     envvar="ENDACTION_STORAGE", show_envvar=True, default=None,
                     help=STORAGE_HELP),
        click.option("--agent-url", default=None, metavar="URL", envvar="ENDACTION_AGENT_URL",
                     show_envvar=True,
                     help="use the agents' host at URL (`endaction agent serve`) instead of "
                          "agents in this process"),
        click.option("--agent-token-file", type=click.Path(dir_okay=False),
                     envvar="ENDACTION_AGENT_TOKEN_FILE", show_envvar=True,
                     default=None, metavar="F", help="the file holding that host's token"),
        click.option("--agent-ca", type=click.Path(dir_okay=False), default=None, metavar="F",
                     envvar="ENDACTION_AGENT_CA", show_envvar=True,
                     help="for an https:// host: the CA its certificate is trusted by "
                          "[default: the system's CAs]"),
        click.option("--agent-cert", type=click.Path(dir_okay=False), default=None,
                     metavar="F", envvar="ENDACTION_AGENT_CERT", show_envvar=True,
                     help="this process's certificate, for a host that requires one"),
        click.option("--agent-key", type=click.Path(dir_okay=False), default=None,
                     metavar="F", envvar="ENDACTION_AGENT_KEY", show_envvar=True,
                     help="the key of --agent-cert"),
        click.option("--agent-option", multiple=True, metavar="KEY=VALUE",
                     envvar="ENDACTION_AGENT_OPTION", show_envvar=True,
                     help="a setting the application's agents understand (repeatable; in "
                          "the variable, separated by spaces)"),
    ]
    for option in reversed(options):
        with_agents = option(with_agents)
    return with_agents  # type: ignore[return-value]
