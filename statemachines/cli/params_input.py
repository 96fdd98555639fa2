"""`--params`: a command's parameters as JSON text, `@FILE`, or `-` for standard input.

A request of 200,000 disks does not fit on a command line ("Argument list too long" comes from
the shell, before endaction runs), so it comes from a file or a pipe, bounded: a runaway
producer must not fill the memory of the process that would write it to the database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

from ..toolkit.errors import UsageProblem

#: The largest parameters `--params` takes, as JSON text.
MAX_PARAMS_BYTES = 16 * 2**20
PARAMS_HELP = ("the command's parameters as a JSON object: the text itself, @FILE to read it "
               f"from FILE, or - for standard input (at most {MAX_PARAMS_BYTES >> 20} MiB)")


def _bounded(stream: IO[bytes], where: str, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UsageProblem(f"--params {where} is larger than {limit:,} bytes, the most "
                           "endaction takes as a command's parameters")
    return data


def _read_file(path: Path, limit: int) -> bytes:
    """The bytes of an `@file` value, bounded; a UsageProblem naming what stood in the way."""
    try:
        if path.is_dir():
            raise UsageProblem(f"--params @{path}: is a directory, not a file")
        with path.open("rb") as stream:
            return _bounded(stream, f"file {path}", limit)
    except FileNotFoundError:
        raise UsageProblem(f"--params @{path}: no such file") from None
    except OSError as err:
        raise UsageProblem(f"--params @{path}: cannot be read: {err.strerror}") from err


def read_params(value: str, *, limit: int = MAX_PARAMS_BYTES,
                stdin: IO[bytes] | None = None) -> dict[str, Any]:
    """The parameters `value` names, parsed: a UsageProblem for anything else."""
    if value == "-":
        where = "from standard input"
        raw = _bounded(stdin or sys.stdin.buffer, where, limit)
    elif value.startswith("@"):
        path = Path(value[1:]).expanduser()
        where = f"file {path}"
        raw = _read_file(path, limit)
    else:
        where = "text"
        raw = value.encode()
        if len(raw) > limit:
            raise UsageProblem(f"--params is larger than {limit:,} bytes")
    try:
        parameters: Any = json.loads(raw)
    except UnicodeDecodeError as err:
        raise UsageProblem(f"--params {where} is not UTF-8 text: {err}") from err
    except json.JSONDecodeError as err:
        raise UsageProblem(f"--params {where} is not JSON: {err}") from err
    except RecursionError:
        raise UsageProblem(f"--params {where} is nested too deeply to be parameters") from None
    if not isinstance(parameters, dict):
        raise UsageProblem(f"--params {where} must be a JSON object, not "
                           f"{type(parameters).__name__}")
    return parameters
