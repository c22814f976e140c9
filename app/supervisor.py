"""`bookworm serve` as a supervisor: API processes accepting on one inherited socket, one worker process.

The supervisor binds the port once and starts its children as `python -m app.cli ...`; each child gets
the resolved server URLs through its environment and dies with the supervisor (PR_SET_PDEATHSIG). A
child that exits is restarted after a backoff that doubles while it keeps crashing, up to a cap. SIGINT
or SIGTERM stops them all: a SIGTERM each, a bounded wait, then SIGKILL (a second signal kills at once).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from app.backoff import Backoff
from app.embedded.children import Child, die_with_parent, terminate

log = logging.getLogger("bookworm.supervisor")

API_COMMAND = "api-process"  # the hidden subcommand an API child runs
LISTEN_FD_OPTION = "--listen-fd"
CHILD_STOP_SIGNAL = signal.SIGTERM  # sent on stop, and by the kernel when the supervisor dies
BACKOFF_START = 1.0  # seconds before the first restart of a child that crashed
BACKOFF_CAP = 30.0  # a child that keeps crashing is restarted at most this often
STABLE_AFTER = 60.0  # a child that ran this long before it exited is restarted after BACKOFF_START again
POLL_INTERVAL = 0.1  # seconds between looks at the children
LISTEN_BACKLOG = 2048  # uvicorn's default


class RestartDelay:
    """How long to wait before restarting one child: doubling while it crashes soon after each start."""

    def __init__(
        self, start: float = BACKOFF_START, cap: float = BACKOFF_CAP, stable_after: float = STABLE_AFTER
    ) -> None:
        self._backoff = Backoff(start, cap)
        self._stable_after = stable_after

    def next_delay(self, ran_for: float) -> float:
        """Return the delay before restarting a child that exited after running `ran_for` seconds."""
        if ran_for >= self._stable_after:
            self._backoff.reset()
        return self._backoff.next()


@dataclass(frozen=True)
class ChildSpec:
    """One child to keep running: a name for the log and its `bookworm` arguments."""

    name: str
    args: tuple[str, ...]

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "app.cli", *self.args]


def cores() -> int:
    """Return the CPUs this process may run on (its affinity, which containers narrow), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def api_process_count(requested: int) -> int:
    """Return how many API processes to run: `requested`, or one per core when it is 0."""
    if requested < 0:
        raise ValueError(f"the number of API processes must be 0 (one per core) or more, not {requested}")
    return requested or cores()


def layout(api_processes: int, *, workers: bool, listen_fd: int) -> list[ChildSpec]:
    """Return the children of `bookworm serve`: the API processes, then (unless not) the worker."""
    api = [
        ChildSpec(f"API process {n}", (API_COMMAND, LISTEN_FD_OPTION, str(listen_fd)))
        for n in range(1, api_processes + 1)
    ]
    return api + [ChildSpec("worker", ("worker",))] * workers


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port, for the API processes to accept on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def exit_status(returncode: int) -> str:
    """Describe how a child ended: `status 3` or `signal SIGKILL`."""
    if returncode >= 0:
        return f"status {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


@dataclass
class _Slot:
    """One child the supervisor keeps running, and when it is due to start again."""

    spec: ChildSpec
    restart_delay: RestartDelay
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None


class Supervisor:
    """Keep the children running until SIGINT or SIGTERM; then stop them all."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        env: Mapping[str, str],
        pass_fds: Sequence[int],
        on_exit: Callable[[int], None] = lambda pid: None,
    ) -> None:
        self.slots = [_Slot(spec, RestartDelay()) for spec in specs]
        self.env = dict(env)
        self.pass_fds = tuple(pass_fds)
        self.on_exit = on_exit  # told the pid of each child that exited while `serve` runs
        self.stopping = False

    def run(self) -> None:
        """Start every child and restart those that exit, until a stop signal; then stop them all."""
        with self._signals():
            try:
                for slot in self.slots:
                    self._start(slot)
                while not self.stopping:
                    self._tend(time.monotonic())
                    time.sleep(POLL_INTERVAL)  # a signal cuts it short and sets `stopping`
            finally:
                self._stop()

    def _start(self, slot: _Slot) -> None:
        slot.process = subprocess.Popen(
            slot.spec.command,
            stdin=subprocess.DEVNULL,
            # A child prints only its own banner (`worker`'s), which the start-up block stands for; its
            # log lines and errors go to standard error, shared with the supervisor.
            stdout=subprocess.DEVNULL,
            env=self.env,
            pass_fds=self.pass_fds,
            preexec_fn=die_with_parent(CHILD_STOP_SIGNAL),  # the only way to set PR_SET_PDEATHSIG
            start_new_session=True,  # Ctrl-C reaches only the supervisor, which stops the children in turn
        )
        restarted = slot.restart_at is not None
        slot.started_at, slot.restart_at = time.monotonic(), None
        # The first start is in `serve`'s start-up block; a restart follows a warning that says why.
        level = logging.INFO if restarted else logging.DEBUG
        log.log(level, "started %s (pid %d)", slot.spec.name, slot.process.pid)

    def _tend(self, now: float) -> None:
        """Schedule the restart of each child that exited; start those whose backoff is over."""
        for slot in self.slots:
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    self._start(slot)
                continue
            assert slot.process is not None
            returncode = slot.process.poll()
            if returncode is None:
                continue
            self.on_exit(slot.process.pid)
            delay = slot.restart_delay.next_delay(now - slot.started_at)
            slot.restart_at = now + delay
            log.warning(
                "%s (pid %d) exited with %s; restart in %g s",
                slot.spec.name,
                slot.process.pid,
                exit_status(returncode),
                delay,
            )

    def _running(self) -> list[subprocess.Popen[bytes]]:
        return [s.process for s in self.slots if s.process is not None and s.process.poll() is None]

    def _stop(self) -> None:
        """SIGTERM every child, wait a bounded time for all, SIGKILL those still running."""
        self.stopping = True
        children: list[Child] = [(process, CHILD_STOP_SIGNAL) for process in self._running()]
        terminate(children)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """Make SIGINT/SIGTERM stop the children gracefully; a second one kills them at once."""

        def on_signal(signum: int, frame: object) -> None:
            if not self.stopping:
                self.stopping = True
                return
            print("bookworm: stopped forcefully", file=sys.stderr, flush=True)
            for process in self._running():
                process.kill()

        previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
