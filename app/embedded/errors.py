"""Why the embedded servers of a data directory cannot be had."""

from __future__ import annotations

from typing import Any


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
