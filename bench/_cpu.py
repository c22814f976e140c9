"""CPU used during a measure, from /proc: the load generator, the server, its databases, the machine."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

_TICK = float(os.sysconf("SC_CLK_TCK"))
_PROC = Path("/proc")
_IDLE_FIELDS = (3, 4)  # idle, iowait in /proc/stat's "cpu" line


BOOKWORM = "app.cli"  # in the command line of `bookworm serve` and of every process it starts


@dataclass(frozen=True)
class CpuProbe:
    """Which processes are the server and its databases.

    The server is `bookworm serve` (a supervisor) with its API and worker processes. Embedded servers are
    its other children. With BOOKWORM_DATABASE_URL, the database side is the PostgreSQL backends of that
    database (a shared Redis is left out: others use it too).
    """

    server_pid: int | None
    database: str | None = None  # the database name, when PostgreSQL is not embedded

    @classmethod
    def of(cls, server_pid: int | None, env: dict[str, str]) -> CpuProbe:
        """Return the probe of a server started with `env`."""
        url = env.get("BOOKWORM_DATABASE_URL")
        return cls(server_pid, urlsplit(url).path.lstrip("/") or None if url else None)

    def read(self) -> CpuTimes:
        """Read the counters now."""
        processes = _processes()
        server = self._server_pids(processes)
        return CpuTimes(
            at=time.perf_counter(),
            client=time.process_time(),
            server=sum(processes[pid].cpu for pid in server) if server else None,
            database={
                pid: p.cpu
                for pid, p in processes.items()
                if pid not in server and self._is_database(pid, p, processes)
            },
            machine=_machine(),
        )

    def _server_pids(self, processes: dict[int, _Process]) -> set[int]:
        """`bookworm serve` and the bookworm processes it started (API, worker)."""
        if self.server_pid not in processes:
            return set()
        children = {pid for pid, p in processes.items() if p.parent == self.server_pid and BOOKWORM in p.args}
        return {self.server_pid, *children}

    def _is_database(self, pid: int, process: _Process, processes: dict[int, _Process]) -> bool:
        if self.database is not None:
            return _backend_of(process, self.database)
        if self.server_pid is None or pid == self.server_pid:
            return False
        while pid in processes and pid != self.server_pid:
            pid = processes[pid].parent
        return pid == self.server_pid


@dataclass(frozen=True)
class TreeProbe:
    """A server that is a process tree (`root` and every process below it) on a database of its own."""

    root: int
    database: str

    def read(self) -> CpuTimes:
        """Read the counters now; `server` is None once the root has ended."""
        processes = _processes()
        tree = _tree(self.root, processes)
        return CpuTimes(
            at=time.perf_counter(),
            client=time.process_time(),
            server=sum(processes[pid].cpu for pid in tree) if tree else None,
            database={pid: p.cpu for pid, p in processes.items() if _backend_of(p, self.database)},
            machine=_machine(),
        )


def _tree(root: int, processes: dict[int, _Process]) -> set[int]:
    if root not in processes:
        return set()
    below: dict[int, list[int]] = {}
    for pid, p in processes.items():
        below.setdefault(p.parent, []).append(pid)
    tree: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(below.get(pid, ()))
    return tree


def _backend_of(process: _Process, database: str) -> bool:
    """Whether `process` is a PostgreSQL backend connected to `database`."""
    return process.name == "postgres" and database in process.args.split()


def children(parent: int, marker: str) -> list[int]:
    """The pids of the live children of `parent` whose command line holds `marker`."""
    return sorted(pid for pid, p in _processes().items() if p.parent == parent and marker in p.args)


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds used so far, and when they were read."""

    at: float
    client: float  # this process: the load generator
    server: float | None  # `bookworm serve` and its API and worker processes, summed
    database: dict[int, float]  # PostgreSQL (and embedded Redis) processes, by pid
    machine: float | None  # busy time summed over every core


@dataclass(frozen=True)
class CpuShare:
    """Percent of one core used between two readings (the machine's can reach cores x 100)."""

    client: float
    server: float | None
    database: float | None
    machine: float | None

    @classmethod
    def between(cls, before: CpuTimes, after: CpuTimes) -> CpuShare:
        """Return each percentage over the interval."""
        wall = max(after.at - before.at, 1e-9)

        def share(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else (b - a) / wall * 100

        # A process born during the interval counts from zero; one that ended is lost (pools keep theirs).
        database = sum(cpu - before.database.get(pid, 0.0) for pid, cpu in after.database.items())
        return cls(
            client=(after.client - before.client) / wall * 100,
            server=share(before.server, after.server),
            database=database / wall * 100 if after.database else None,
            machine=share(before.machine, after.machine),
        )


@dataclass(frozen=True)
class _Process:
    parent: int
    name: str
    args: str
    cpu: float


def _processes() -> dict[int, _Process]:
    found: dict[int, _Process] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended while we looked
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
        found[int(entry.name)] = _Process(parent=int(fields[1]), name=name, args=args, cpu=cpu)
    return found


def _machine() -> float | None:
    try:
        ticks = [int(v) for v in (_PROC / "stat").read_text().splitlines()[0].split()[1:9]]
    except OSError:
        return None
    return (sum(ticks) - sum(ticks[i] for i in _IDLE_FIELDS)) / _TICK


def scheduled(pid: int) -> tuple[float, float] | None:
    """Seconds the process's threads have run on a core and waited, runnable, for one (None: not known).

    From /proc/PID/task/*/schedstat (the kernel's scheduler statistics; absent on kernels built without
    them). A process whose running and waiting add up to the whole wall time is saturated: its event loop
    never idles, and more work for it waits its turn.
    """
    ran = waited = 0
    try:
        for task in (_PROC / str(pid) / "task").iterdir():
            try:
                fields = (task / "schedstat").read_text().split()
            except OSError:  # the thread ended while we looked
                continue
            ran, waited = ran + int(fields[0]), waited + int(fields[1])
    except OSError:
        return None
    return ran / 1e9, waited / 1e9
