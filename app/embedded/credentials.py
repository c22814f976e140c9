"""The passwords of the embedded servers and the private files and directories that hold them.

Both passwords are made on the first start and kept in ``credentials.json`` (mode 0600) in the data
directory; the servers listen only on Unix sockets in ``run/`` (mode 0700), so another local user can
neither read a password nor reach a socket, and a process of ours that reaches one must still log in.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from app.embedded.errors import EmbeddedError

CREDENTIALS_FILE = "credentials.json"
SOCKET_DIR = "run"
# A Unix socket's path must fit sockaddr_un.sun_path (108 bytes with its NUL); PostgreSQL's longest file
# there is ".s.PGSQL.5432.lock".
MAX_SOCKET_DIR_BYTES = 107 - len("/.s.PGSQL.5432.lock")


@dataclass(frozen=True)
class Credentials:
    """The password of the `postgres` role and the Valkey `requirepass` of one data directory."""

    postgres: str = field(repr=False)
    valkey: str = field(repr=False)


def load_credentials(data_dir: Path) -> Credentials:
    """Return the passwords kept in data_dir, making them on first use (mode 0600)."""
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        fresh = {"postgres": secrets.token_urlsafe(32), "valkey": secrets.token_urlsafe(32)}
        _create_once(path, json.dumps(fresh, indent=2) + "\n")
    _make_private(path, 0o600)
    try:
        kept = json.loads(path.read_text())
        return Credentials(postgres=_password(kept, "postgres"), valkey=_password(kept, "valkey"))
    except (OSError, ValueError, TypeError) as exc:
        raise EmbeddedError(
            f"cannot read the embedded servers' passwords from {path} ({exc}); restore it from a backup"
        ) from None


def _password(kept: dict[str, object], name: str) -> str:
    value = kept[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"no {name} password")
    return value


def write_private(path: Path, text: str) -> None:
    """Replace the file at path, atomically, with text readable by its owner alone."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    _write_new(draft, text)
    os.replace(draft, path)


def _create_once(path: Path, text: str) -> None:
    """Write text to path unless it exists: of concurrent first starts, one file wins and all use it."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    _write_new(draft, text)
    try:
        os.link(draft, path)  # link() never replaces an existing file
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def _write_new(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def private_dir(path: Path, mode: int = 0o700) -> Path:
    """Create the directory at path if needed and give it mode (from old versions it may be wider)."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    _make_private(path, mode)
    return path


def _make_private(path: Path, mode: int) -> None:
    if stat.S_IMODE(path.stat().st_mode) != mode:
        try:
            path.chmod(mode)
        except PermissionError:
            raise EmbeddedError(
                f"cannot restrict {path} to mode {mode:o}: it belongs to another user"
            ) from None


def socket_dir(data_dir: Path) -> Path:
    """Return the directory of the servers' Unix sockets, checking that their paths can be bound."""
    directory = data_dir / SOCKET_DIR
    if len(os.fsencode(directory)) > MAX_SOCKET_DIR_BYTES or "," in str(directory):
        raise EmbeddedError(
            f"{directory} cannot hold the servers' Unix sockets (at most {MAX_SOCKET_DIR_BYTES} bytes and no"
            " comma); set BOOKWORM_DATA_DIR to a shorter path"
        )
    return directory
