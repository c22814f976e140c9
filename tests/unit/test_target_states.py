"""The target-state cache of the command bus: bounded, least recently used out first, forgotten by stream."""

from __future__ import annotations

import pytest

from app.commands.targets import TargetStates


def test_the_least_recently_used_leave_first() -> None:
    kept = TargetStates(size=2)
    kept.put(("a", "fold"), 1)
    kept.put(("b", "fold"), 2)
    assert kept.get(("a", "fold")) == 1  # a is now the most recently used
    kept.put(("c", "fold"), 3)
    assert len(kept) == 2
    assert kept.get(("b", "fold")) is None
    assert kept.get(("a", "fold")) == 1


def test_forgetting_a_stream_drops_every_fold_of_it() -> None:
    kept = TargetStates()
    kept.put(("a", "one fold"), 1)
    kept.put(("a", "another fold"), 2)
    kept.put(("b", "one fold"), 3)
    kept.forget("a")
    assert len(kept) == 1
    assert kept.get(("b", "one fold")) == 3


def test_size_zero_keeps_nothing() -> None:
    kept = TargetStates(size=0)
    kept.put(("a", "fold"), 1)
    assert len(kept) == 0


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        TargetStates(size=-1)
