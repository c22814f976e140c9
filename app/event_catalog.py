"""Render the event catalog (docs/events.md) from the code: schemas, producers, consumers and topics."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Iterator
from pathlib import Path

from app.commands.bus import HANDLERS
from app.events.registry import REGISTRY, EventRegistry, EventType
from app.processes import PROCESS_MANAGERS
from app.projections import PROJECTIONS

REGENERATE = "bookworm events catalog > docs/events.md"

HEADER = f"""# Event catalog

Generated from the code by `{REGENERATE}`; a unit test fails when this page
and the code disagree. Every event is stored with its type name and schema version; older payloads are
upgraded on read by the upcasters listed (stored rows are never rewritten).

Beside its schema, each event lists what the code declares about it, and each declaration is kept true
by the code that runs or by a test:

- **Produced by**: the commands whose `emits` names it (`app/domain/<context>/commands.py`), with the
  process managers that send them (their `sends`), and the process managers that append it themselves
  (their `emits`). The command bus refuses to append an event type its command does not declare, so no
  producer is missing; `tests/integration/test_event_catalog.py` runs every command and process manager
  and requires each declared command, event and sender to occur, so none is listed that cannot happen.
  The declaration was preferred to reading the domain code: every `decide` returns `list[Event]`, and
  which events a command leads to depends on the path its handler takes, which only running it shows.
- **Consumed by**: the projections and process managers whose `handles` names it. The consumer runner
  hands a consumer only the events its `handles` names, so this list cannot go stale.
- **Topics**: the live topics that a projection's change notices about it go to, by the projection's
  `topics`. A notice on an undeclared topic fails the projection's integration tests, and
  `tests/integration/test_event_catalog.py` requires every declared one to be announced. A topic is
  written as its function in `app/live/notices.py` builds it, `book:{{book_id}}`: the id is the topic's,
  not always a field of the event (a rename reaches the topic of every book that shows the name).
"""


def _type_name(annotation: object) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    return text.replace("typing.", "").replace("decimal.", "").replace(" | ", " or ")


def _context(cls: type) -> str:
    return cls.__module__.rsplit(".", 1)[-1]


def _code(names: typing.Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _named(kind: str, names: list[str]) -> str:
    """Return `kind` (plural for several) and the names: "projections `a`, `b`"; empty for none."""
    if not names:
        return ""
    return f"{kind}{'s' if len(names) > 1 else ''} {_code(names)}"


def _schema(registry: EventRegistry, entry: EventType) -> Iterator[str]:
    doc = inspect.getdoc(entry.cls)
    if doc and not doc.startswith(entry.cls.__name__ + "("):
        yield f"{doc}\n"
    hints = typing.get_type_hints(entry.cls)
    yield "| field | type |\n| --- | --- |"
    yield from (f"| {f.name} | `{_type_name(hints[f.name])}` |" for f in dataclasses.fields(entry.cls))
    for version in range(1, entry.version):
        yield f"\nUpcaster v{version} → v{version + 1}: {registry.upcaster_doc(entry.name, version)}"


def producers(entry: EventType) -> list[str]:
    """Return the commands (with the process managers that send them) and process managers that append it."""
    found = []
    for command in HANDLERS:
        if entry.cls in command.emits:
            senders = [p.name for p in PROCESS_MANAGERS if command in p.sends]
            sent = f", which {_named('process manager', senders)} sends" if senders else ""
            found.append(f"command `{command.__name__}`{sent}")
    appenders = [p.name for p in PROCESS_MANAGERS if entry.cls in p.emits]
    if appenders:
        found.append(f"{_named('process manager', appenders)}, appending it without a command")
    return found


def consumers(entry: EventType) -> list[str]:
    """Return the projections and process managers whose `handles` names the event type."""
    projections = [p.name for p in PROJECTIONS.values() if entry.name in p.handles]
    processes = [p.name for p in PROCESS_MANAGERS if entry.name in p.handles]
    named = (_named("projection", projections), _named("process manager", processes))
    return [text for text in named if text]


def topics(entry: EventType) -> list[str]:
    """Return the topic patterns the projections announce the event type on, with their projection."""
    return [
        f"{_code(p.topics[entry.name])} (projection `{p.name}`)"
        for p in PROJECTIONS.values()
        if p.topics.get(entry.name)
    ]


def _links(entry: EventType) -> Iterator[str]:
    yield ""
    yield f"- **Produced by**: {'; '.join(producers(entry)) or 'nothing'}"
    yield f"- **Consumed by**: {'; '.join(consumers(entry)) or 'nothing'}"
    yield f"- **Topics**: {'; '.join(topics(entry)) or 'none'}"


def render(registry: EventRegistry = REGISTRY) -> str:
    """Return the Markdown catalog of every registered event type."""
    lines = [HEADER]
    entries = [registry.get(name) for name in registry.names()]
    for context in sorted({_context(e.cls) for e in entries}):
        lines.append(f"\n## {context}\n")
        for entry in (e for e in entries if _context(e.cls) == context):
            lines.append(f"### {entry.name} (v{entry.version})\n")
            lines.extend(_schema(registry, entry))
            lines.extend(_links(entry))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def docs_path() -> Path:
    return Path(__file__).resolve().parents[1] / "docs" / "events.md"
