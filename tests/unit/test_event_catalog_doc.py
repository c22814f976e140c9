"""docs/events.md is what `bookworm events catalog` prints, and what it lists is declared consistently."""

from __future__ import annotations

from app.bus.protocol import type_names
from app.commands.bus import HANDLERS
from app.event_catalog import REGENERATE, docs_path, producers, render
from app.events import REGISTRY
from app.live.notices import topic_kind
from app.processes import PROCESS_MANAGERS
from app.projections import PROJECTIONS


def test_docs_events_md_is_what_the_command_prints() -> None:
    assert docs_path().read_text() == render(), f"docs/events.md is stale; run: {REGENERATE}"


def test_every_event_has_a_producer() -> None:
    orphans = [name for name in REGISTRY.names() if not producers(REGISTRY.get(name))]
    assert orphans == [], "no command's and no process manager's `emits` names these events"


def test_every_command_declares_registered_events() -> None:
    for command in HANDLERS:
        assert command.emits, f"{command.__name__}.emits is empty: declare the events it may append"
        assert len(type_names(*command.emits)) == len(command.emits)  # KeyError: an unregistered class


def test_process_managers_send_known_commands_and_emit_registered_events() -> None:
    for manager in PROCESS_MANAGERS:
        assert manager.handles, f"{manager.name} handles no event"
        assert set(manager.sends) <= set(HANDLERS), manager.name
        assert len(type_names(*manager.emits)) == len(manager.emits)


def test_a_projection_announces_only_events_it_handles() -> None:
    for projection in PROJECTIONS.values():
        assert set(projection.topics) <= projection.handles, projection.name


def test_each_topic_is_fed_by_one_projection() -> None:
    # The live hub keeps one cursor per subscriber: a topic fed by two projections would lose notices.
    feeders: dict[str, set[str]] = {}
    for projection in PROJECTIONS.values():
        for patterns in projection.topics.values():
            for topic in patterns:
                feeders.setdefault(topic_kind(topic), set()).add(projection.name)
    assert {kind: names for kind, names in feeders.items() if len(names) > 1} == {}
