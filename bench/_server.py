"""Start a throw-away `bookworm serve` for a benchmark, and run `bookworm` commands on its servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

import app
from app.supervisor import cores

READY_TIMEOUT = 120.0
# The checkout whose `app` this benchmark imported (PYTHONPATH=that/checkout to measure another one). A
# `python -m app.cli` puts its working directory ahead of PYTHONPATH, so the processes started here run in
# that checkout's directory: else a run from one checkout with PYTHONPATH naming another would serve the
# first one's code.
TREE = Path(app.__file__).resolve().parents[1]
# "1": run `bookworm serve --no-workers` plus one `bookworm worker` beside it, as a split deployment would.
SEPARATE_WORKER = "BENCH_SEPARATE_WORKER"


@dataclass(frozen=True)
class Server:
    """A running `bookworm serve`: its base URL and the environment it was started with."""

    url: str
    env: dict[str, str]
    pid: int

    def admin_token(self) -> str:
        """Return an admin's bearer token this server accepts (catalog mutations need one)."""
        return admin_token(self.env)

    def run_cli(self, *args: str) -> str:
        """Run `bookworm ARGS` against the same PostgreSQL and Redis; return its standard output."""
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *args], env=self.env, capture_output=True, text=True, cwd=TREE
        )
        if done.returncode != 0:
            raise SystemExit(f"bookworm {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout


def admin_token(env: Mapping[str, str]) -> str:
    """Sign an admin token with `bookworm token`, using the secret the environment `env` configures."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "--sub", "bench", "--name", "Bench", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        cwd=TREE,
    )
    if done.returncode != 0:
        raise SystemExit(f"bookworm token failed: {done.stderr.strip()}")
    return done.stdout.strip()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backends(env: Mapping[str, str]) -> str:
    """Describe which PostgreSQL and Redis a server started with `env` uses."""
    database = "from BOOKWORM_DATABASE_URL" if env.get("BOOKWORM_DATABASE_URL") else "embedded"
    redis = "from BOOKWORM_REDIS_URL" if env.get("BOOKWORM_REDIS_URL") else "embedded"
    prefix = env.get("BOOKWORM_REDIS_PREFIX") or "bookworm"
    return f"PostgreSQL {database}, Redis {redis} (key prefix {prefix})"


def layout(env: Mapping[str, str]) -> str:
    """Describe the processes a server started with `env` runs."""
    count = int(env.get("BOOKWORM_API_PROCESSES") or 0)
    api = f"{count} API process{'es' * (count > 1)}" if count else f"{cores()} API processes (one per core)"
    worker = "`bookworm worker` beside it" if env.get(SEPARATE_WORKER) == "1" else "1 worker process"
    return f"{api}, {worker}"


@contextmanager
def bookworm_server() -> Iterator[Server]:
    """Start `bookworm serve` on a free port of 127.0.0.1; stop it on exit.

    It uses BOOKWORM_DATABASE_URL / BOOKWORM_REDIS_URL when they are set, else embedded servers in a
    throw-away data directory (unless BOOKWORM_DATA_DIR names one). `pid` is the supervisor's: its API
    processes and its worker are its children (BOOKWORM_API_PROCESSES sets how many API processes). With
    BENCH_SEPARATE_WORKER=1 it runs with `--no-workers` and one `bookworm worker` (which attaches to the
    same servers) runs beside it, not a child: its CPU shows only in the machine's.
    """
    port = free_port()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bookworm-bench-") as data_dir:
        env.setdefault("BOOKWORM_DATA_DIR", data_dir)
        env.setdefault("BOOKWORM_LOG_LEVEL", "WARNING")
        # A benchmark's few clients stand for many: per-client budgets would measure the limiter, not the
        # server. Set them in the environment to measure with budgets on.
        for name in ("BUDGET_CAPACITY", "BUDGET_REFILL", "WRITE_BUDGET_CAPACITY", "WRITE_BUDGET_REFILL"):
            env.setdefault(f"BOOKWORM_{name}", "1000000000")
        separate = env.get(SEPARATE_WORKER) == "1"
        cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(
            cmd + ["--no-workers"] * separate, env=env, stdout=subprocess.DEVNULL, cwd=TREE
        )
        url = f"http://127.0.0.1:{port}"
        children = [proc]
        try:
            _wait_ready(url, proc)
            if separate:
                worker = [sys.executable, "-m", "app.cli", "worker"]
                children.append(subprocess.Popen(worker, env=env, stdout=subprocess.DEVNULL, cwd=TREE))
            yield Server(url=url, env=env, pid=proc.pid)
        finally:
            for child in reversed(children):
                child.terminate()
                child.wait(30)


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("bookworm serve exited before it was ready")
        time.sleep(0.3)
    raise SystemExit(f"bookworm serve did not become ready in {READY_TIMEOUT:g} s")


def percentile(values: list[float], q: float) -> float:
    """Return the nearest-rank `q` quantile (0..1) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
