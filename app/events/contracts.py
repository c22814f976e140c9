"""Render the event catalog (docs/events.md) from the registry: the documented event contracts."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from pathlib import Path

from app.events.registry import REGISTRY, EventRegistry

HEADER = """# Event catalog

Generated from the event registry by `python -m app.events.contracts > docs/events.md`; a test fails
when this page and the code disagree. Every event is stored with its type name and schema version;
older payloads are upgraded on read by the upcasters listed (stored rows are never rewritten).
"""


def _type_name(annotation: object) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    return text.replace("typing.", "").replace("decimal.", "").replace(" | ", " or ")


def _context(cls: type) -> str:
    return cls.__module__.rsplit(".", 1)[-1]


def render(registry: EventRegistry = REGISTRY) -> str:
    """Return the Markdown catalog of every registered event type."""
    lines = [HEADER]
    entries = [registry.get(name) for name in registry.names()]
    for context in sorted({_context(e.cls) for e in entries}):
        lines.append(f"\n## {context}\n")
        for entry in (e for e in entries if _context(e.cls) == context):
            lines.append(f"### {entry.name} (v{entry.version})\n")
            doc = inspect.getdoc(entry.cls)
            if doc and not doc.startswith(entry.cls.__name__ + "("):
                lines.append(f"{doc}\n")
            hints = typing.get_type_hints(entry.cls)
            lines.append("| field | type |\n| --- | --- |")
            lines.extend(
                f"| {f.name} | `{_type_name(hints[f.name])}` |" for f in dataclasses.fields(entry.cls)
            )
            for version in range(1, entry.version):
                lines.append(
                    f"\nUpcaster v{version} → v{version + 1}: {registry.upcaster_doc(entry.name, version)}"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def docs_path() -> Path:
    return Path(__file__).resolve().parents[2] / "docs" / "events.md"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
