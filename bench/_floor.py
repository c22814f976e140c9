"""Start and stop the floor app (a bare Strawberry + asyncpg + Redis app) from its directory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 900.0  # its first start builds a virtualenv
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Floor:
    """A running floor: its GraphQL URL, the pid of its uvicorn (workers are children) and its queries."""

    url: str
    pid: int
    directory: Path

    def query(self, name: str) -> str:
        """Return the text of the floor's `queries/<name>.graphql`."""
        return (self.directory / "queries" / f"{name}.graphql").read_text()


@contextmanager
def floor_server(directory: Path, workers: int, database_url: str, redis_url: str) -> Iterator[Floor]:
    """Start the floor with `workers` uvicorn workers on `database_url` and `redis_url`; stop it on exit."""
    script = directory / "serve.sh"
    if not script.is_file():
        raise SystemExit(f"no serve.sh in {directory}: give the floor's directory with --floor")
    env = {**os.environ, "PG_URL": database_url, "REDIS_URL": redis_url}
    done = subprocess.run(
        [str(script), "--workers", str(workers)],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    printed = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if done.returncode != 0 or "FLOOR_PID" not in printed:
        raise SystemExit(f"the floor did not start: {done.stderr.strip()[-500:]}")
    pid = int(printed["FLOOR_PID"])
    try:
        yield Floor(url=printed["FLOOR_URL"], pid=pid, directory=directory)
    finally:
        _stop(pid)


def _stop(pid: int) -> None:
    """Ask uvicorn to stop (it stops its workers); kill it if it is still there after STOP_TIMEOUT."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
