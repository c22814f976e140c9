"""States of the streams commands refer to (a book's author, category, publisher), kept between commands.

A command that refers to other streams reads them before its write transaction, and in that transaction
checks that each is still at the version it read (constraints.HoldTargets). The check is what makes the
decision safe, so a state kept from an earlier command is as good as one read now: when the stream has
moved since, the check fails (TargetChanged), the bus forgets the state, and the next attempt reads it.
A stream at a given version has one state (streams are append-only), so nothing stale passes the check.
Only states of existing, undeleted streams are kept: a refusal (a missing target) is always decided on a
fresh read. Bounded: the least recently used leave first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

DEFAULT_SIZE = 1_024

Key = tuple[str, Any]  # (stream id, the fold it was read with)


class TargetStates:
    """Up to `size` loaded target states, by stream id and fold."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 0:
            raise ValueError("the target-state cache cannot have a negative size")
        self._size = size
        self._kept: OrderedDict[Key, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Key) -> Any | None:
        loaded = self._kept.get(key)
        if loaded is not None:
            self._kept.move_to_end(key)
        return loaded

    def keep(self, key: Key, loaded: Any) -> None:
        if self._size == 0:
            return
        self._kept[key] = loaded
        self._kept.move_to_end(key)
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def forget(self, stream_id: str) -> None:
        """Drop every state kept for `stream_id` (it moved past the version kept)."""
        for key in [key for key in self._kept if key[0] == stream_id]:
            del self._kept[key]
