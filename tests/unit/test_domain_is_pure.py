"""The pure domain loads no I/O library: it decides on commands and events and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

IO_LIBRARIES = (
    "asyncpg",
    "redis",
    "broadcaster",
    "starlette",
    "strawberry",
    "uvicorn",
    "alembic",
    "httpx",
    "sqlmodel",
)

# Imports every module under app.domain in a fresh interpreter, then names the I/O libraries loaded.
PROBE = """
import importlib, json, pkgutil, sys
import app.domain
for module in pkgutil.walk_packages(app.domain.__path__, "app.domain."):
    importlib.import_module(module.name)
print(json.dumps({"libraries": sorted({name.split(".")[0] for name in sys.modules}),
                  "app": sorted(name for name in sys.modules if name.startswith("app."))}))
"""


def _loaded() -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    loaded: dict[str, list[str]] = json.loads(out)
    return loaded


def test_importing_the_domain_loads_no_io_library() -> None:
    loaded = _loaded()
    assert set(loaded["libraries"]).isdisjoint(IO_LIBRARIES), loaded["libraries"]
    outside = [m for m in loaded["app"] if not m.startswith(("app.domain", "app.events", "app.ids"))]
    assert outside == [], "the domain imports only itself, the events and ids"
