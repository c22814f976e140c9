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

from typing import Any

from app.recent import Recent

DEFAULT_SIZE = 1_024

Key = tuple[str, Any]  # (stream id, the fold it was read with)


class TargetStates(Recent[Key, Any]):
    """Up to `size` loaded target states, by stream id and fold."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        super().__init__(size, "the target-state cache")

    def forget(self, stream_id: str) -> None:
        """Drop every state kept for `stream_id` (it moved past the version kept)."""
        for key in [key for key in self.keys() if key[0] == stream_id]:
            self.discard(key)
