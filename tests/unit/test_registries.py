"""Each registry lists every context's part: a new context that forgets one fails here, not in production.

The recipe for a new context (docs/architecture.md, "Adding a bounded context") names these registries;
these tests find each context's parts by their place in the tree and check that the registry has them.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from types import ModuleType

import app.commands
import app.domain
import app.processes
import app.projections
import app.schema
from app.commands.bus import HANDLERS
from app.domain.commands import Command
from app.processes import PROCESS_MANAGERS
from app.projections import PROJECTIONS
from app.schema import MUTATIONS, QUERIES, SUBSCRIPTIONS

EVENT_INFRASTRUCTURE = {"base", "registry"}


def _modules(package: ModuleType, suffix: str = "") -> list[ModuleType]:
    names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return [importlib.import_module(n) for n in names if n.endswith(suffix)]


def test_importing_app_events_registers_every_context_s_events() -> None:
    probe = (
        "import importlib, json, pkgutil, app.events\n"
        "from app.events import REGISTRY\n"
        "first = REGISTRY.names()\n"
        "for m in pkgutil.iter_modules(app.events.__path__, 'app.events.'): importlib.import_module(m.name)\n"
        "print(json.dumps([first, REGISTRY.names()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    registered, everything = json.loads(out)
    assert registered == everything, "a module under app/events is not imported by app/events/__init__.py"


def test_every_command_of_the_domain_has_a_handler_in_the_bus() -> None:
    commands = {
        value
        for module in _modules(app.domain, ".commands")
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Command) and value is not Command
    }
    assert commands, "the domain declares commands"
    missing = sorted(c.__name__ for c in commands - set(HANDLERS))
    assert missing == [], "app/commands/bus.py HANDLERS lacks the handler of these commands"


def test_every_handlers_module_is_in_the_bus() -> None:
    for module in _modules(app.commands, "_handlers"):
        handlers = vars(module).get("HANDLERS", {})
        assert handlers.items() <= HANDLERS.items(), f"{module.__name__}.HANDLERS is not in the bus"


def test_every_projection_is_registered() -> None:
    found = {
        value.name
        for module in _modules(app.projections)
        for value in vars(module).values()
        if not isinstance(value, type) and _is_projection(value)
    }
    assert found == set(PROJECTIONS)


def test_every_process_manager_is_registered() -> None:
    found = {
        value
        for module in _modules(app.processes)
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__ and _is_process_manager(value)
    }
    assert found == set(PROCESS_MANAGERS), "app/processes/__init__.py PROCESS_MANAGERS lacks one"


def _is_process_manager(value: type) -> bool:
    return all(hasattr(value, member) for member in ("name", "handles", "apply"))


def _is_projection(value: object) -> bool:
    members = ("name", "version", "handles", "ddl", "deferred_ddl", "view_ddl", "drop_ddl", "apply")
    return all(hasattr(value, member) for member in members)


def test_every_schema_area_is_composed_into_the_schema() -> None:
    areas = [m for m in _modules(app.schema) if m.__name__.count(".") == 2 and hasattr(m, "__path__")]
    assert areas, "the schema has context areas"
    composed = {"Query": QUERIES, "Mutation": MUTATIONS, "Subscription": SUBSCRIPTIONS}
    exported = [(name, getattr(area, name)) for area in areas for name in getattr(area, "__all__", [])]
    for name, cls in exported:
        listed = next((v for suffix, v in composed.items() if name.endswith(suffix)), (cls,))
        assert cls in listed, f"{name} is not composed in app/schema/__init__.py"
