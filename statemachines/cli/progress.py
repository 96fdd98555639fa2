"""Progress lines for a run, on stderr so that stdout stays one JSON document with --json."""

from __future__ import annotations

import sys
from typing import TextIO

from ..tick_report import TickReport


class PlainProgress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, report: TickReport) -> None:
        line = f"step {report.number}: {report.summary()}"
        if report.errors:
            line += " | " + "; ".join(report.errors)
        print(line, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
