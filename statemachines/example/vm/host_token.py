"""The storage host's address and bearer token, as both the host and its callers read them.

Apart from the server (storage_host.py) and the client (remote_storage.py): the demo reads
the token to call a host, and the host makes it, and neither needs the other's HTTP stack.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from statemachines import AgentError

log = logging.getLogger("endaction.storage_host")

DEFAULT_PORT = 8710
TOKEN_FILE = "agent-token"


def read_token(path: Path) -> str:
    """The token in `path` (surrounding whitespace ignored); refused when it is too short."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise AgentError(f"cannot read the token file {path}: {err}") from err
    if len(token) < 16:
        raise AgentError(f"the token in {path} is {len(token)} characters long; at least 16 "
                         "are needed")
    if not token.isascii() or not token.isprintable():
        raise AgentError(f"the token in {path} must be printable ASCII (it goes in an HTTP "
                         "header)")
    return token


def ensure_token_file(path: Path) -> str:
    """The token in `path`, made (random, readable by this user only) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        log.warning("wrote a new host token to %s (give it to the engines: "
                    "--agent-token-file %s)", path, path)
    return read_token(path)
