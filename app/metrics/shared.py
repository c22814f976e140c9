"""The metrics directory `bookworm serve` shares with its children (prometheus-client's multiprocess mode).

The supervisor makes a fresh directory for each run and removes it on exit, so no figure of an earlier
run is summed into this one; each child finds it in PROMETHEUS_MULTIPROC_DIR and writes its metrics to
files of its own there. When a child exits, its live gauges (subscriptions, pool connections) are removed
from the sums; its counters stay, so totals never go back when a child is restarted.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client.multiprocess import mark_process_dead

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client when a child imports it


@dataclass(frozen=True)
class SharedMetrics:
    """The children's environment for the shared directory; `forget` the figures of one that exited."""

    directory: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def forget(self, pid: int) -> None:
        """Drop the live gauges of the child `pid`, which has exited."""
        if self.directory is not None:
            mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]


@contextmanager
def shared_directory(enabled: bool) -> Iterator[SharedMetrics]:
    """Make a fresh metrics directory for the children of `serve` (none when metrics are off)."""
    if not enabled:
        yield SharedMetrics()
        return
    directory = tempfile.mkdtemp(prefix="bookworm-metrics-")
    try:
        yield SharedMetrics(directory, {DIRECTORY_VARIABLE: directory})
    finally:
        shutil.rmtree(directory, ignore_errors=True)
