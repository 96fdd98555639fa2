"""Progress lines for a run, on stderr so that stdout stays one JSON document with --json."""

from __future__ import annotations

import sys
from typing import TextIO

from ..tick_report import TickReport


class PlainProgress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, report: TickReport) -> None:
        print(f"step {report.number}: {self.describe(report)}", file=self.stream, flush=True)

    @staticmethod
    def describe(report: TickReport) -> str:
        line = report.summary()
        if report.errors:
            line += " | " + "; ".join(report.errors)
        return line

    def note(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
