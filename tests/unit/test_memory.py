"""The collector settings an API process takes once it has started (app/memory.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app.memory import YOUNG_GENERATION, freeze_startup_objects


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_startup_objects_are_frozen_and_the_young_generation_is_collected_less_often() -> None:
    _, older, oldest = gc.get_threshold()
    freeze_startup_objects()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_GENERATION, older, oldest)  # the older generations keep theirs
