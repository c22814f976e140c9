"""Figures a suite measured (fault scenarios, attacks), kept as one line each and printed after the run."""

from __future__ import annotations

import pytest


class Measured:
    """Lines of figures under one heading."""

    def __init__(self, heading: str) -> None:
        self.heading = heading
        self.lines: list[str] = []

    def record(self, name: str, **figures: object) -> None:
        """Keep one line: `name: figure value, ...` (underscores in figure names read as spaces)."""
        self.lines.append(f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures.items()))

    def report(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the lines under the heading, if any were kept."""
        if self.lines:
            terminalreporter.section(self.heading)
            for line in self.lines:
                terminalreporter.write_line(line)
